/**
 * The node's watchdog: started detached by startNode() with the starting process's pid; when
 * that process dies without stopping its node (SIGKILL, a tap timeout), this removes
 * everything the node made (reapNode). stop() kills this watchdog first.
 */
import { reapNode } from './node.js';
import { alive } from './procs.js';

const parent = Number(process.argv[2]);
if (!Number.isInteger(parent) || parent <= 0) {
  process.stderr.write('usage: node-reaper.js <pid>\n');
  process.exit(2);
}
const timer = setInterval(() => {
  if (alive(parent)) return;
  clearInterval(timer);
  reapNode();
}, 1000);
