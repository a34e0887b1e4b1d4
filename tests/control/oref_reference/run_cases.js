// Evaluates a list of determine-basal cases with the reference oref0 package in one process.
// Usage: node run_cases.js <oref0 package dir> [--repeat N] [--keep-logging] < cases.json
// Each case: {glucose: [...], currenttemp, iob: [...], profile, autosens (or null),
// meal (or null), microbolus, currentTime (ms), reservoir (or null)}.
// Prints {"results": [{"glucose_status", "result"} | {"exception"}], "loop_ms", "decisions"}.
// The reference logs to stderr on every decision; that is silenced unless --keep-logging
// (the logging then goes wherever stderr points).
'use strict';
const path = require('path');

const args = process.argv.slice(2);
const dir = path.resolve(args[0]);
const repeat = args.includes('--repeat') ? Number(args[args.indexOf('--repeat') + 1]) : 1;
const keepLogging = args.includes('--keep-logging');
const determineBasal = require(path.join(dir, 'lib/determine-basal/determine-basal'));
const tempBasalFunctions = require(path.join(dir, 'lib/basal-set-temp'));
const getLastGlucose = require(path.join(dir, 'lib/glucose-get-last'));

if (!keepLogging) {
  console.error = () => {};
  process.stderr.write = () => true;
}

function evaluate(c) {
  // getLastGlucose mutates its records, so each run gets its own copy.
  const records = JSON.parse(JSON.stringify(c.glucose));
  const status = getLastGlucose(records);
  const meal = c.meal === null || c.meal === undefined ? {} : c.meal;
  const rT = determineBasal(status, c.currenttemp, c.iob, c.profile, c.autosens, meal,
    tempBasalFunctions, c.microbolus, c.reservoir, new Date(c.currentTime));
  return { glucose_status: status, result: rT };
}

// Helper cases: {"helper": {rate, duration, profile, currenttemp}} runs round_basal and
// setTempBasal on a result that already has a reason.
const roundBasal = require(path.join(dir, 'lib/round-basal'));
function evaluateHelper(h) {
  const rT = tempBasalFunctions.setTempBasal(h.rate, h.duration, h.profile, { reason: 'r' },
    h.currenttemp);
  return { round_basal: roundBasal(h.rate, h.profile),
    max_safe_basal: tempBasalFunctions.getMaxSafeBasal(h.profile), set_temp: rT };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const cases = JSON.parse(input);
  const results = [];
  for (const c of cases) {
    try {
      results.push(JSON.parse(JSON.stringify(c.helper ? evaluateHelper(c.helper) : evaluate(c))));
    } catch (e) {
      results.push({ exception: String(e) });
    }
  }
  // Timing: determine-basal alone, on glucose statuses prepared beforehand.
  const prepared = [];
  for (const c of cases) {
    if (c.helper) continue;
    try {
      prepared.push([getLastGlucose(JSON.parse(JSON.stringify(c.glucose))), c,
        c.meal === null || c.meal === undefined ? {} : c.meal, new Date(c.currentTime)]);
    } catch (e) { /* reported above */ }
  }
  const start = process.hrtime.bigint();
  for (let r = 0; r < repeat; r++) {
    for (const [status, c, meal, now] of prepared) {
      try {
        determineBasal(status, c.currenttemp, c.iob, c.profile, c.autosens, meal,
          tempBasalFunctions, c.microbolus, c.reservoir, now);
      } catch (e) { /* reported above */ }
    }
  }
  const loopMs = Number(process.hrtime.bigint() - start) / 1e6;
  process.stdout.write(JSON.stringify({ results, loop_ms: loopMs, decisions: repeat * prepared.length }));
});
