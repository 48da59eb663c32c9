// An answer other than 200 that an HTTP handler chose, with its status.
export class HttpError extends Error {
  constructor (readonly status: number, message: string) {
    super(message)
  }
}

/** The client's request is wrong: 400. */
export class BadRequest extends HttpError {
  constructor (message: string) {
    super(400, message)
  }
}
