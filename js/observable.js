// A minimal interop observable, so `from(engine.metrics$)` works in RxJS without depending on it.

const symbolObservable = (typeof Symbol === 'function' && Symbol.observable) || '@@observable';

function toObserver(observerOrNext) {
  if (typeof observerOrNext === 'function') return { next: observerOrNext };
  return observerOrNext ?? {};
}

/**
 * `subscribe(observer)` calls `start(emit)` for each subscriber; `start` returns a teardown.
 */
export class Observable {
  constructor(start) {
    this._start = start;
  }
  subscribe(observerOrNext) {
    const obs = toObserver(observerOrNext);
    let closed = false;
    let teardown = null;
    const sub = {
      get closed() {
        return closed;
      },
      unsubscribe() {
        if (closed) return;
        closed = true;
        if (teardown) teardown();
      },
    };
    const sink = {
      next(v) {
        if (!closed && obs.next) obs.next(v);
      },
      error(e) {
        if (closed) return;
        closed = true;
        if (obs.error) obs.error(e);
        if (teardown) teardown();
      },
      complete() {
        if (closed) return;
        closed = true;
        if (obs.complete) obs.complete();
        if (teardown) teardown();
      },
    };
    const t = this._start(sink);
    teardown = typeof t === 'function' ? t : null;
    if (closed && teardown) teardown();
    return sub;
  }
  [symbolObservable]() {
    return this;
  }
}
if (symbolObservable !== '@@observable') {
  Observable.prototype['@@observable'] = function () {
    return this;
  };
}

function reportError(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else console.error(e);
}

/** A multicast source: `emit(v)` reaches every current subscriber. */
export class Subject {
  constructor(onFirst, onLast) {
    this.sinks = new Set();
    this.onFirst = onFirst;
    this.onLast = onLast;
    this.observable = new Observable((sink) => {
      this.sinks.add(sink);
      if (this.sinks.size === 1 && this.onFirst) this.onFirst();
      return () => {
        this.sinks.delete(sink);
        if (this.sinks.size === 0 && this.onLast) this.onLast();
      };
    });
  }
  get observed() {
    return this.sinks.size > 0;
  }
  emit(v) {
    for (const s of this.sinks) {
      try {
        s.next(v);
      } catch (e) {
        // A throwing subscriber must not break the engine or the other subscribers.
        reportError(e);
      }
    }
  }
  complete() {
    for (const s of [...this.sinks]) s.complete();
  }
}
