// `chaac bin create` / `chaac bin remove`: the launcher's data container
// bins, through a running agent's HTTP API (POST and DELETE /api/v1/bins).
import { Command, InvalidArgumentError, Option } from 'commander'
import { DEFAULTS, parseHostPort } from './config.ts'
import { DEFAULT_BIN, parseBinRequest } from './containers/launcher.ts'
import { requestJson } from './http-client.ts'
import { formatSize } from './units.ts'

// Making the image, or moving a bin's balls away, may take a while.
const TIMEOUT_MS = 600_000

interface Answer {
  id: string
  agent: string
  level: string
  capacity: number
  container: { name: string, path: string }
  moved?: number
  dropped?: number
}

function agentOptions (cmd: Command): Command {
  return cmd
    .addOption(new Option('--http <host:port>', 'the agent\'s HTTP API').env('CHAAC_HTTP').default(DEFAULTS.http))
    .addOption(new Option('--admin-token <token>', 'the agent\'s admin token (prefer the variable: a flag shows in ps)').env('CHAAC_ADMIN_TOKEN'))
    .option('--json', 'print the raw JSON answer')
}

function checked<T> (fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

interface Flags { http: string, adminToken?: string, json?: boolean }

export function binCommand (): Command {
  const bin = new Command('bin').description('data container bins: create one on an agent\'s host, or remove one after moving its balls')
  agentOptions(bin.command('create')
    .description('create and start a data container that becomes a bin of the agent (a named volume for disk, a tmpfs for mem)')
    .addOption(new Option('--level <level>', 'mem or disk').default(DEFAULT_BIN.level))
    .addOption(new Option('--capacity <size>', 'the bin\'s capacity').default(DEFAULT_BIN.capacity))
    .addOption(new Option('--host <agent>', 'the agent (its id, or the start of it) on whose host the bin goes; default: the agent at --http')))
    .action(async (f: Flags & { level: string, capacity: string, host?: string }) => {
      checked(() => parseHostPort(f.http))
      const req = checked(() => parseBinRequest({ level: f.level, capacity: f.capacity, ...(f.host !== undefined ? { host: f.host } : {}) }))
      const answer = await requestJson(f.http, '/api/v1/bins', { method: 'POST', body: req, token: f.adminToken, timeoutMs: TIMEOUT_MS }) as Answer
      if (f.json === true) console.log(JSON.stringify(answer, null, 2))
      else console.log(`bin ${answer.id}: ${answer.level}, ${formatSize(answer.capacity)}, in container ${answer.container.name}:${answer.container.path} of agent ${answer.agent}`)
    })
  agentOptions(bin.command('remove')
    .description('move the balls of a data container bin to other bins, then remove its container and volume')
    .argument('<id>', 'the bin\'s id, or its container\'s name'))
    .action(async (id: string, f: Flags) => {
      checked(() => parseHostPort(f.http))
      const answer = await requestJson(f.http, `/api/v1/bins/${encodeURIComponent(id)}`, { method: 'DELETE', token: f.adminToken, timeoutMs: TIMEOUT_MS }) as Answer
      if (f.json === true) console.log(JSON.stringify(answer, null, 2))
      else console.log(`removed bin ${answer.id} (container ${answer.container.name}) of agent ${answer.agent}: ${answer.moved ?? 0} balls copied to other bins first, ${answer.dropped ?? 0} cached copies dropped`)
    })
  return bin
}
