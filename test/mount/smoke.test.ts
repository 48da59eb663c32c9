import t from 'tap'
import { cleanupAgent, shOk, startAgent } from '../helpers/agent.ts'

t.test('agent - mounts, serves a file written and read by another process, unmounts on SIGTERM', async (t) => {
  const agent = await startAgent()
  t.teardown(async () => await cleanupAgent(agent))
  await shOk('echo hello > a.txt && mkdir d && cp a.txt d/b', { cwd: agent.mount })
  t.equal(await shOk('cat d/b', { cwd: agent.mount }), 'hello\n')
  const status = await agent.json('/status')
  t.equal(status.mount.path, agent.mount)
  t.equal(await agent.stop(), 0)
  t.notMatch(await shOk('cat /proc/self/mountinfo'), agent.mount, 'unmounted after SIGTERM')
})
