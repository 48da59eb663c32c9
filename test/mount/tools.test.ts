// The everyday tools work on a real mount as on a local disk: cp -a, tar,
// rsync, git, sqlite3 and a C compiler, each checked against its source.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, sh, shOk, startAgent } from '../helpers/agent.ts'

const agent = await startAgent()
t.teardown(async () => await cleanupAgent(agent))
const mnt = agent.mount

// A tree of a few thousand files, directories and symbolic links on the local disk.
const DOC = '/usr/share/doc'
const INCLUDE = '/usr/include'

/** Type, mode, owner, size (regular files) and link target of every entry, sorted: what a faithful copy keeps. */
const listing = (dir: string): string =>
  `cd ${dir} && find . -printf '%P|%y|%m|%U|%G|%l\\n' | sort && find . -type f -printf '%P|%s\\n' | sort`
/** Modification times of every entry, to the second, in the time zone's own notation. */
const mtimes = (dir: string): string => `cd ${dir} && find . -printf '%P|%T@\\n' | cut -d. -f1 | sort`

const LONG = { timeout: 300_000 }

t.test('cp -a - a tree of thousands of files copies in and diffs equal, with modes, owners, links and times', LONG, async (t) => {
  await shOk(`cp -a ${DOC} ${mnt}/doc`, { timeoutMs: 240_000 })
  const diff = await sh(`diff -r --no-dereference ${DOC} ${mnt}/doc`, { timeoutMs: 120_000 })
  t.equal(diff.code, 0, diff.stdout.slice(0, 2000) + diff.stderr.slice(0, 2000))
  t.equal(await shOk(listing(`${mnt}/doc`)), await shOk(listing(DOC)), 'types, modes, owners, sizes and link targets')
  t.equal(await shOk(mtimes(`${mnt}/doc`)), await shOk(mtimes(DOC)), 'modification times')
  t.equal((await shOk(`find ${mnt}/doc | wc -l`)).trim(), (await shOk(`find ${DOC} | wc -l`)).trim())
})

t.test('tar - c | x into the mount, then compare against the archive and the source', LONG, async (t) => {
  await shOk(`mkdir ${mnt}/inc && tar -C ${INCLUDE} -cf - . | tar -C ${mnt}/inc -xpf -`, { timeoutMs: 240_000 })
  const cmp = await sh(`tar -C ${INCLUDE} -cf - . | tar -C ${mnt}/inc -df -`, { timeoutMs: 120_000 })
  t.equal(cmp.code, 0, 'tar --compare finds no difference: ' + cmp.stdout.slice(0, 2000) + cmp.stderr.slice(0, 2000))
  const diff = await sh(`diff -r --no-dereference ${INCLUDE} ${mnt}/inc`, { timeoutMs: 120_000 })
  t.equal(diff.code, 0, diff.stdout.slice(0, 2000) + diff.stderr.slice(0, 2000))
  // And back out: an archive made from the mount unpacks to the same tree.
  const back = await sh(`d=$(mktemp -d) && tar -C ${mnt}/inc -cf - . | tar -C $d -xpf - && diff -r --no-dereference ${INCLUDE} $d; r=$?; rm -rf $d; exit $r`, { timeoutMs: 120_000 })
  t.equal(back.code, 0, back.stdout.slice(0, 2000) + back.stderr.slice(0, 2000))
})

t.test('rsync -a - copies in, a second run finds nothing to do, and copies back out', LONG, async (t) => {
  await shOk(`rsync -a ${DOC}/ ${mnt}/rs/`, { timeoutMs: 240_000 })
  const diff = await sh(`diff -r --no-dereference ${DOC} ${mnt}/rs`, { timeoutMs: 120_000 })
  t.equal(diff.code, 0, diff.stdout.slice(0, 2000) + diff.stderr.slice(0, 2000))
  t.equal(await shOk(listing(`${mnt}/rs`)), await shOk(listing(DOC)), 'types, modes, owners, sizes and link targets')
  const again = await shOk(`rsync -a --itemize-changes ${DOC}/ ${mnt}/rs/`, { timeoutMs: 120_000 })
  t.equal(again, '', 'the quick check (size and mtime) sees every file as up to date')
  await shOk(`echo changed >> ${mnt}/rs/changed.txt && rm -r ${mnt}/rs/$(ls ${DOC} | head -1)`)
  const delta = await shOk(`rsync -a --delete --itemize-changes ${DOC}/ ${mnt}/rs/`, { timeoutMs: 120_000 })
  t.match(delta, /changed\.txt/, 'the extra file is deleted')
  t.equal((await sh(`diff -r --no-dereference ${DOC} ${mnt}/rs`, { timeoutMs: 120_000 })).code, 0, 'in sync again')
  const out = await sh(`d=$(mktemp -d) && rsync -a ${mnt}/rs/ $d/ && diff -r --no-dereference ${DOC} $d; r=$?; rm -rf $d; exit $r`, { timeoutMs: 120_000 })
  t.equal(out.code, 0, out.stdout.slice(0, 2000) + out.stderr.slice(0, 2000))
})

t.test('git - init, add, commit, clone within the mount; status is clean and fsck passes', LONG, async (t) => {
  const git = 'git -c user.name=Chaac -c user.email=chaac@example.org -c init.defaultBranch=main'
  const repo = join(mnt, 'repo')
  await shOk(`mkdir ${repo} && cd ${repo} && ${git} init -q && cp -r ${INCLUDE}/linux src && ${git} add -A && ${git} commit -qm first`, { timeoutMs: 240_000 })
  await shOk(`cd ${repo} && echo '/* changed */' >> src/types.h && git mv src/kernel.h src/kernel-moved.h && ${git} commit -qam second`)
  t.equal(await shOk(`cd ${repo} && git status --porcelain`), '', 'the working tree is clean after committing')
  await shOk(`cd ${mnt} && ${git} clone -q repo clone && ${git} clone -q --no-local repo clone2`, { timeoutMs: 240_000 })
  for (const dir of ['repo', 'clone', 'clone2']) {
    const fsck = await sh(`cd ${mnt}/${dir} && git fsck --full --strict`, { timeoutMs: 120_000 })
    t.equal(fsck.code, 0, `${dir}: git fsck ${fsck.stdout}${fsck.stderr}`)
    t.equal(await shOk(`cd ${mnt}/${dir} && git status --porcelain`), '', `${dir}: git status is clean`)
    t.equal(await shOk(`cd ${mnt}/${dir} && git log --format=%s`), 'second\nfirst\n', `${dir}: both commits`)
  }
  const diff = await sh(`diff -r --exclude=.git ${repo} ${mnt}/clone`, { timeoutMs: 120_000 })
  t.equal(diff.code, 0, diff.stdout.slice(0, 2000))
  await shOk(`cd ${repo} && git gc -q --aggressive && git fsck --full --strict && git status --porcelain`, { timeoutMs: 240_000 })
  t.equal((await shOk(`cd ${repo} && git count-objects -v | grep ^count`)).trim(), 'count: 0', 'gc packed every loose object')
  t.equal(await shOk(`cd ${repo} && git show HEAD:src/types.h | tail -1`), '/* changed */\n')
})

t.test('sqlite3 - 10,000 rows in a transaction, integrity_check ok, read back from a new process', LONG, async (t) => {
  const cwd = join(mnt, 'sql')
  await shOk(`mkdir ${cwd}`)
  // The SQL scripts stay on the local disk: only the database lives on the mount.
  const local = await mkdtemp(join(tmpdir(), 'chaac-sql-'))
  t.teardown(async () => await rm(local, { recursive: true, force: true }))
  for (const mode of ['delete', 'wal']) {
    const db = `${mode}.db`
    const inserts = `PRAGMA journal_mode=${mode};\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);\nBEGIN;\n` +
      Array.from({ length: 10_000 }, (_, i) => `INSERT INTO t VALUES(${i + 1}, 'row-${i + 1}-${'x'.repeat(i % 200)}');`).join('\n') +
      '\nCOMMIT;\nCREATE INDEX tv ON t(v);\n'
    const script = join(local, `${mode}.sql`)
    await writeFile(script, inserts)
    await shOk(`sqlite3 ${db} < ${script}`, { cwd, timeoutMs: 120_000 })
    t.equal(await shOk(`sqlite3 ${db} 'PRAGMA integrity_check;'`, { cwd }), 'ok\n', `${mode}: integrity_check`)
    t.equal(await shOk(`sqlite3 ${db} "SELECT count(*), sum(id), sum(length(v)) FROM t;"`, { cwd }), `10000|50005000|${expectedLength()}\n`, `${mode}: every row`)
    t.equal(await shOk(`sqlite3 ${db} "SELECT v FROM t WHERE id = 4321;"`, { cwd }), `row-4321-${'x'.repeat(4320 % 200)}\n`)
    await shOk(`sqlite3 ${db} "BEGIN; UPDATE t SET v = 'updated' WHERE id % 2 = 0; DELETE FROM t WHERE id > 9000; COMMIT; VACUUM;"`, { cwd, timeoutMs: 120_000 })
    t.equal(await shOk(`sqlite3 ${db} "PRAGMA integrity_check; SELECT count(*), sum(v = 'updated') FROM t;"`, { cwd }), 'ok\n9000|4500\n', `${mode}: update, delete, vacuum`)
  }
  t.equal((await shOk('ls', { cwd })).trim().split('\n').filter((f) => !f.endsWith('.db')).join(' '), '', 'no journal or WAL file left behind')
})

function expectedLength (): number {
  let sum = 0
  for (let i = 1; i <= 10_000; i++) sum += `row-${i}-`.length + ((i - 1) % 200)
  return sum
}

t.test('gcc - compiles and links a C program into the mount, and it runs from there', LONG, async (t) => {
  const cwd = join(mnt, 'cc')
  await shOk(`mkdir ${cwd}`)
  await shOk(`cat > main.c <<'EOF'
#include <stdio.h>
int square(int);
int main(void) { printf("%d\\n", square(12)); return 0; }
EOF
cat > square.c <<'EOF'
int square(int x) { return x * x; }
EOF
cat > Makefile <<'EOF'
prog: main.o square.o
\tgcc -o $@ $^
%.o: %.c
\tgcc -O2 -Wall -c -o $@ $<
EOF`, { cwd })
  await shOk('make -s', { cwd, timeoutMs: 120_000 })
  t.equal(await shOk('./prog', { cwd }), '144\n')
  t.equal(await shOk('make -q && echo up to date', { cwd }), 'up to date\n', 'make sees the build as current')
  await shOk('echo "int square(int x) { return x * x * x; }" > square.c && make -s', { cwd, timeoutMs: 120_000 })
  t.equal(await shOk('./prog', { cwd }), '1728\n', 'make rebuilt after the source changed')
  await shOk('gcc -O2 -o direct main.c square.c', { cwd, timeoutMs: 120_000 })
  t.equal(await shOk('./direct && stat -c %a direct', { cwd }), '1728\n755\n')
})
