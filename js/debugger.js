// StreamDebugger: records debug events, alerts and snapshots from an engine in bounded rings,
// and exports them as JSON for a bug report.
import { Fifo } from './fifo.js';
import { Subject } from './observable.js';
import { checkKeys, describe } from './priority.js';
import { version } from './version.js';

class Ring {
  constructor(max) {
    this.max = max;
    this.q = new Fifo();
  }
  push(v) {
    this.q.push(v);
    if (this.q.length > this.max) this.q.shift();
  }
  toArray() {
    return this.q.toArray();
  }
}

export class StreamDebugger {
  constructor(engine, options) {
    if (!engine || typeof engine._listen !== 'function') throw new TypeError(`engine must be a StreamEngine, got ${describe(engine)}`);
    const o = options ?? {};
    if (typeof o !== 'object' || Array.isArray(o)) throw new TypeError(`options must be an object, got ${describe(o)}`);
    checkKeys(o, ['maxHistorySize'], 'StreamDebugger options');
    const max = o.maxHistorySize ?? 10000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxHistorySize must be a positive integer, got ${describe(max)}`);
    this._engine = engine;
    this._max = max;
    this._events = new Ring(max);
    this._alerts = new Ring(max);
    this._snapshots = new Ring(Math.max(1, Math.ceil(max / 10)));
    this._recording = false;
    this._unlisten = null;
    this._debugSubject = new Subject();
    this._snapshotSubject = new Subject();
    this._alertSubject = new Subject();
    this.debug$ = this._debugSubject.observable;
    this.snapshots$ = this._snapshotSubject.observable;
    this.alerts$ = this._alertSubject.observable;
    this._startedAt = null;
  }

  get recording() {
    return this._recording;
  }

  startRecording() {
    if (this._recording) return;
    this._recording = true;
    this._startedAt = Date.now();
    this._unlisten = this._engine._listen((ev) => this._onEvent(ev));
  }

  stopRecording() {
    if (!this._recording) return;
    this._recording = false;
    if (this._unlisten) this._unlisten();
    this._unlisten = null;
  }

  _onEvent(ev) {
    if (ev.type === 'debug') {
      this._events.push(ev.debug);
      this._debugSubject.emit(ev.debug);
    } else if (ev.type === 'alert') {
      this._alerts.push(ev.alert);
      this._alertSubject.emit(ev.alert);
    } else if (ev.type === 'metrics') {
      const snap = { timestamp: ev.timestamp, systemMetrics: ev.metrics.system, connections: ev.metrics.connections };
      this._snapshots.push(snap);
      this._snapshotSubject.emit(snap);
    }
  }

  getEventHistory() {
    return this._events.toArray();
  }

  getEventsForConnection(id) {
    return this._events.toArray().filter((e) => e.connectionId === id);
  }

  getAlerts() {
    return this._alerts.toArray();
  }

  /** Thresholds in the old shape; they apply to the engine's alerts. */
  setThresholds(thresholds) {
    this._engine.setThresholds(thresholds);
  }

  exportDebugData() {
    const events = this.getEventHistory();
    return {
      metadata: {
        exportTimestamp: Date.now(),
        engineVersion: version,
        config: { ...this._engine.config },
        recording: this._recording,
        recordingStartedAt: this._startedAt,
        eventCount: events.length,
        maxHistorySize: this._max,
        connections: this._engine.listConnections(),
        thresholds: this._engine.getThresholds(),
      },
      events,
      alerts: this._alerts.toArray(),
      snapshots: this._snapshots.toArray(),
    };
  }
}

