#!/usr/bin/env node
import { main } from '../dist/src/cli/ioctl/tswtpm-ioctl.js';

main(process.argv.slice(2));
