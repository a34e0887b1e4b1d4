// Auditory alarm cues by priority, after IEC 60601-1-8 (alarm systems), Table 3/4:
// high priority is a 10-pulse burst (3 + 2, pause, 3 + 2), medium a 3-pulse burst, low a
// 1- or 2-pulse burst; pulses 150-1000 Hz with at least four harmonics; bursts repeat for
// high and medium (inter-burst interval up to 15 s and 30 s) while the condition is active
// and unacknowledged, low need not repeat. A browser may only start audio after a user
// gesture, so sound starts when the clinician switches it on.

const PATTERNS = {
  // Pulse start offsets in seconds within one burst.
  high: [0, 0.2, 0.4, 0.8, 1.0, 1.6, 1.8, 2.0, 2.4, 2.6],
  medium: [0, 0.25, 0.5],
  low: [0, 0.3],
};
const PITCH_HZ = { high: 660, medium: 523, low: 392 };
const PULSE_S = { high: 0.15, medium: 0.2, low: 0.25 };
export const REPEAT_MS = { high: 8000, medium: 20000, low: null };

let context = null;
let wave = null;
let enabled = false;

export function soundEnabled() {
  return enabled;
}

/** Switch sound on (must run inside a click handler) or off. */
export function setSound(on) {
  enabled = Boolean(on);
  if (enabled && !context) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) {
      enabled = false;
      return false;
    }
    context = new Ctx();
    // Fundamental plus four harmonics of falling amplitude.
    const real = new Float32Array([0, 1, 0.6, 0.45, 0.35, 0.25]);
    wave = context.createPeriodicWave(real, new Float32Array(real.length));
  }
  if (enabled && context.state === "suspended") context.resume();
  return enabled;
}

/** Play one burst for the priority ("high", "medium", "low"); no-op when muted. */
export function playBurst(priority) {
  if (!enabled || !context || !PATTERNS[priority]) return false;
  const start = context.currentTime + 0.05;
  const length = PULSE_S[priority];
  for (const offset of PATTERNS[priority]) {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.setPeriodicWave(wave);
    osc.frequency.value = PITCH_HZ[priority];
    const t0 = start + offset;
    // Short rise and fall (IEC 60601-1-8 asks for 10-20 % of the pulse) to avoid clicks.
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.2, t0 + length * 0.15);
    gain.gain.setValueAtTime(0.2, t0 + length * 0.85);
    gain.gain.linearRampToValueAtTime(0, t0 + length);
    osc.connect(gain).connect(context.destination);
    osc.start(t0);
    osc.stop(t0 + length + 0.01);
  }
  return true;
}

/**
 * Decide which burst is due. `alarms` are the active, unacknowledged alarms; `state` keeps,
 * between calls, the ids already announced and the time of the last burst per priority.
 * Returns the priority to sound now, or null.
 */
export function dueBurst(alarms, state, now) {
  const fresh = alarms.filter((a) => !state.announced.has(a.id));
  for (const alarm of fresh) state.announced.add(alarm.id);
  let due = null;
  for (const priority of ["high", "medium", "low"]) {
    const active = alarms.filter((a) => String(a.priority).toLowerCase() === priority);
    if (!active.length) continue;
    const isNew = fresh.some((a) => String(a.priority).toLowerCase() === priority);
    const repeat = REPEAT_MS[priority];
    const last = state.last[priority];
    // Due when new, never sounded yet (it waited behind a higher priority), or repeat due.
    if (isNew || last === undefined || (repeat !== null && now - last >= repeat)) {
      due = priority;
      break;
    }
    break; // only the highest active priority sounds
  }
  if (due) state.last[due] = now;
  return due;
}
