/**
 * The seed 004 simulator: each tick emits 1–3 `reading`s and, when a value crosses its sensor's
 * threshold, an `event` (WARN above it, CRIT well above it, INFO back to normal, and a
 * workspace-level CRIT "workspace overload", without `sensor_id`, when every sensor is over).
 * Shapes are exactly the seed's, with `ts` in ISO-8601 to the second.
 */

/** A sensor row of the example's "database" (`Sensor.unit`, `threshold` as in seed 004). */
export interface Sensor {
  id: number;
  name: string;
  unit: string;
  threshold: number;
  /** The simulated signal: `base + amplitude · sin(phase)` plus a little noise. */
  base: number;
  amplitude: number;
}

export interface Reading {
  type: 'reading';
  sensor_id: number;
  value: number;
  unit: string;
  ts: string;
}

export interface WorkspaceEvent {
  type: 'event';
  level: 'INFO' | 'WARN' | 'CRIT';
  sensor_id?: number;
  message: string;
  ts: string;
}

export type SimMessage = Reading | WorkspaceEvent;

export interface SimulatorOptions {
  sensors: Sensor[];
  /** Called for every message, in order. */
  emit: (message: SimMessage) => void;
  /** Tick period in ms. Default 1,000 (seed 004: "1–3 readings/sec"). */
  intervalMs?: number;
  /** Source of randomness in [0, 1). Default Math.random; `seededRandom(n)` for a repeatable run. */
  random?: () => number;
}

type Level = 'OK' | 'WARN' | 'CRIT';

/** `2025-07-31T15:47:51Z`: ISO-8601 in UTC, to the second, as the seed's examples. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** mulberry32: a tiny seeded PRNG, good enough for a demo signal. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Simulator {
  readonly #sensors: Sensor[];
  readonly #emit: (message: SimMessage) => void;
  readonly #intervalMs: number;
  readonly #random: () => number;
  readonly #phase = new Map<number, number>();
  readonly #level = new Map<number, Level>();
  #overload = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SimulatorOptions) {
    if (options.sensors.length === 0) throw new TypeError('Simulator needs at least one sensor');
    this.#sensors = options.sensors;
    this.#emit = options.emit;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#random = options.random ?? Math.random;
    for (const s of this.#sensors) {
      this.#phase.set(s.id, this.#random() * 2 * Math.PI);
      this.#level.set(s.id, 'OK');
    }
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts ticking; false if it already was. */
  start(): boolean {
    if (this.#timer !== undefined) return false;
    this.#timer = setInterval(() => this.tick(), this.#intervalMs);
    return true;
  }

  /** Stops ticking; false if it was not running. */
  stop(): boolean {
    if (this.#timer === undefined) return false;
    clearInterval(this.#timer);
    this.#timer = undefined;
    return true;
  }

  /** One tick: emits and returns its messages. */
  tick(now = new Date()): SimMessage[] {
    const ts = isoSeconds(now);
    const out: SimMessage[] = [];
    const count = Math.min(this.#sensors.length, 1 + Math.floor(this.#random() * 3));
    for (const sensor of this.#pick(count)) {
      const phase = this.#phase.get(sensor.id)! + 0.35 + this.#random() * 0.3;
      this.#phase.set(sensor.id, phase);
      const noise = (this.#random() - 0.5) * sensor.amplitude * 0.1;
      const value = Math.round((sensor.base + sensor.amplitude * Math.sin(phase) + noise) * 10) / 10;
      out.push({ type: 'reading', sensor_id: sensor.id, value, unit: sensor.unit, ts });
      const level: Level = value > sensor.threshold * 1.15 ? 'CRIT' : value > sensor.threshold ? 'WARN' : 'OK';
      const before = this.#level.get(sensor.id)!;
      if (level === before) continue;
      this.#level.set(sensor.id, level);
      if (level === 'CRIT') out.push({ type: 'event', level, sensor_id: sensor.id, message: `${sensor.name} critical`, ts });
      else if (level === 'WARN' && before === 'OK') out.push({ type: 'event', level, sensor_id: sensor.id, message: `${sensor.name} threshold exceeded`, ts });
      else if (level === 'OK') out.push({ type: 'event', level: 'INFO', sensor_id: sensor.id, message: `${sensor.name} back to normal`, ts });
    }
    const over = [...this.#level.values()].filter((l) => l !== 'OK').length;
    if (!this.#overload && over === this.#sensors.length) {
      this.#overload = true;
      out.push({ type: 'event', level: 'CRIT', message: 'workspace overload', ts });
    } else if (this.#overload && over < this.#sensors.length) {
      this.#overload = false;
    }
    for (const message of out) this.#emit(message);
    return out;
  }

  /** `count` distinct sensors, in random order. */
  #pick(count: number): Sensor[] {
    const pool = [...this.#sensors];
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, count);
  }
}
