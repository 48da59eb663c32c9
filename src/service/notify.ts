// systemd's readiness protocol (sd_notify): a service of Type=notify finds a
// unix datagram socket in NOTIFY_SOCKET and tells systemd through it when it
// is ready (READY=1) and when it begins to stop (STOPPING=1). Without
// NOTIFY_SOCKET (not started by systemd) nothing is sent.
import { constants } from 'node:os'
import { binding } from '../fuse/lowlevel.ts'

const errnoNames = Object.fromEntries(Object.entries(constants.errno).map(([name, n]) => [n, name])) as Record<number, string>

export interface ServiceManager {
  /** Sends a state (lines of NAME=value); true when systemd got it or none listens. */
  notify: (state: Record<string, string | number>) => boolean
}

export function serviceManager (log: { warn: (obj: object, msg: string) => void }, socket = process.env.NOTIFY_SOCKET): ServiceManager {
  return {
    notify (state) {
      if (socket === undefined || socket === '') return true
      const message = Object.entries(state).map(([name, value]) => `${name}=${String(value).replace(/\n/g, ' ')}`).join('\n')
      const rc = binding.notify(socket, message)
      if (rc < 0) log.warn({ socket, errno: errnoNames[-rc] ?? rc }, `could not tell the service manager ${message.split('\n')[0]}`)
      return rc === 0
    }
  }
}
