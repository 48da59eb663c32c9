// The hash worker, but one that dies (exit code 70) on a ball whose first
// byte is 0xff: the hasher's crash test. Imports run in order, so the
// listener that exits goes first and the real one never answers for that ball.
import './hash-worker-crash.mjs'
import '../../src/store/hash-worker.mjs'
