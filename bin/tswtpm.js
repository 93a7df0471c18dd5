#!/usr/bin/env node
import { main } from '../dist/src/cli/tswtpm.js';

main(process.argv.slice(2));
