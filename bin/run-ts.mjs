#!/usr/bin/env node
// Runs a TypeScript entry point through tsx, so the project needs no build step.
import { register } from 'tsx/esm/api'
import { pathToFileURL } from 'node:url'
import { resolve } from 'node:path'

register()
const [script, ...args] = process.argv.slice(2)
process.argv = [process.argv[0], resolve(script), ...args]
await import(pathToFileURL(resolve(script)).href)
