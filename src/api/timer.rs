//! The clock and timers the Rust API runs on, behind one small trait so that the same engine runs
//! natively (tests, servers), in the browser or Node (wasm32), and under a manual clock.
//!
//! The engine needs exactly two things from its platform: the time now (for accounting,
//! latencies and deadlines) and a future that completes at a deadline (the batch timer, which
//! delivers a partial batch `batch_timeout` ms after its first message, and the end of a held
//! write's wait). Everything else is plain Rust in [`crate::core`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A clock with sleep futures.
///
/// Times are milliseconds on the timer's own monotonic scale (only differences matter).
/// Implementations must make [`Timer::sleep_until`]'s future complete no earlier than
/// `deadline` as seen by [`Timer::now`].
///
/// # Example
///
/// ```
/// use stream_engine::api::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let start = timer.now();
/// timer.advance(5.0);
/// assert_eq!(timer.now() - start, 5.0);
/// ```
pub trait Timer: Clone + 'static {
    /// The future returned by [`Timer::sleep_until`]. Dropping it cancels the timer.
    type Sleep: Future<Output = ()> + Unpin;
    /// The time now, in ms.
    fn now(&self) -> f64;
    /// A future that completes once `now() >= deadline` (at once if that is already so).
    fn sleep_until(&self, deadline: f64) -> Self::Sleep;
}

/// The platform's timer: `NativeTimer` natively, `WebTimer` on wasm32 with the `web`
/// feature.
#[cfg(not(target_arch = "wasm32"))]
pub type DefaultTimer = NativeTimer;

/// The platform's timer: `NativeTimer` natively, `WebTimer` on wasm32 with the `web`
/// feature.
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub type DefaultTimer = WebTimer;

/// A runtime-agnostic native timer: `std::time::Instant` for the clock and `futures-timer` (one
/// helper thread, no async runtime needed) for sleeps. Works under `futures::executor`, tokio,
/// async-std or any other executor.
///
/// ```
/// use stream_engine::api::{NativeTimer, Timer};
///
/// let timer = NativeTimer::new();
/// let t0 = timer.now();
/// futures::executor::block_on(timer.sleep_until(t0 + 1.0));
/// assert!(timer.now() >= t0 + 1.0);
/// ```
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
pub struct NativeTimer {
    origin: std::time::Instant,
}

#[cfg(not(target_arch = "wasm32"))]
impl NativeTimer {
    /// A timer whose time 0 is now.
    pub fn new() -> Self {
        NativeTimer {
            origin: std::time::Instant::now(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for NativeTimer {
    fn default() -> Self {
        Self::new()
    }
}

/// The sleep future of [`NativeTimer`].
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct NativeSleep {
    timer: NativeTimer,
    deadline: f64,
    delay: Option<futures_timer::Delay>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Future for NativeSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let left = self.deadline - self.timer.now();
            if left <= 0.0 {
                return Poll::Ready(());
            }
            // futures-timer may fire a hair early by our clock: re-arm for the rest.
            let delay = self.delay.get_or_insert_with(|| {
                // At most a day per arming: a far deadline (a retry delay may be any finite
                // number of ms) must not overflow `Duration`; the loop re-arms for the rest.
                futures_timer::Delay::new(std::time::Duration::from_secs_f64(
                    left.min(MAX_ARM_MS) / 1000.0,
                ))
            });
            match Pin::new(delay).poll(cx) {
                Poll::Ready(()) => self.delay = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Timer for NativeTimer {
    type Sleep = NativeSleep;
    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0
    }
    fn sleep_until(&self, deadline: f64) -> NativeSleep {
        NativeSleep {
            timer: *self,
            deadline,
            delay: None,
        }
    }
}

/// A clock that moves only when told to: for tests and simulations that must not depend on
/// real time. Clones share the same clock.
///
/// ```
/// use std::future::Future;
/// use std::task::{Context, Poll};
/// use futures::task::noop_waker;
/// use stream_engine::api::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let mut sleep = timer.sleep_until(10.0);
/// let waker = noop_waker();
/// let mut cx = Context::from_waker(&waker);
/// assert_eq!(std::pin::Pin::new(&mut sleep).poll(&mut cx), Poll::Pending);
/// timer.advance(10.0);
/// assert_eq!(std::pin::Pin::new(&mut sleep).poll(&mut cx), Poll::Ready(()));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualTimer {
    inner: Arc<Mutex<ManualInner>>,
}

#[derive(Debug, Default)]
struct ManualInner {
    now: f64,
    sleepers: Vec<(f64, Waker)>,
}

impl ManualTimer {
    /// A clock at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `ms` (negative or NaN values are ignored) and wakes every
    /// sleeper whose deadline has come.
    pub fn advance(&self, ms: f64) {
        let due: Vec<Waker> = {
            let mut g = lock(&self.inner);
            if ms > 0.0 {
                g.now += ms;
            }
            let now = g.now;
            let (due, keep): (Vec<_>, Vec<_>) = g.sleepers.drain(..).partition(|(d, _)| *d <= now);
            g.sleepers = keep;
            due.into_iter().map(|(_, w)| w).collect()
        };
        // Wake outside the lock: a waker may poll inline.
        for w in due {
            w.wake();
        }
    }
}

/// The sleep future of [`ManualTimer`].
#[derive(Debug)]
pub struct ManualSleep {
    timer: ManualTimer,
    deadline: f64,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = lock(&self.timer.inner);
        if g.now >= self.deadline {
            return Poll::Ready(());
        }
        g.sleepers.push((self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Timer for ManualTimer {
    type Sleep = ManualSleep;
    fn now(&self) -> f64 {
        lock(&self.inner).now
    }
    fn sleep_until(&self, deadline: f64) -> ManualSleep {
        ManualSleep {
            timer: self.clone(),
            deadline,
        }
    }
}

/// The longest a platform timer is armed at once, ms (a day); a later deadline re-arms.
#[allow(dead_code)] // unused on wasm32 without `web`
const MAX_ARM_MS: f64 = 86_400_000.0;

/// Locks a mutex, ignoring poisoning: the engine's state stays consistent across a panicking
/// user callback because callbacks run outside the lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub use web::{WebSleep, WebTimer};

#[cfg(all(target_arch = "wasm32", feature = "web"))]
mod web {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        // The global functions exist in browsers, workers and Node alike (unlike `window`).
        #[wasm_bindgen(js_name = setTimeout)]
        fn set_timeout(f: &js_sys::Function, ms: f64) -> JsValue;
        #[wasm_bindgen(js_name = clearTimeout)]
        fn clear_timeout(id: &JsValue);
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        fn performance_now() -> f64;
    }

    /// The platform timer on wasm32: `performance.now()` and `setTimeout`, called through
    /// wasm-bindgen on the global object, so it works in pages, workers and Node.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct WebTimer;

    impl WebTimer {
        /// The platform timer.
        pub fn new() -> Self {
            WebTimer
        }
    }

    #[derive(Default)]
    struct Shared {
        fired: bool,
        waker: Option<Waker>,
    }

    /// The sleep future of [`WebTimer`]: one `setTimeout`, cleared when dropped.
    pub struct WebSleep {
        deadline: f64,
        shared: Rc<RefCell<Shared>>,
        armed: Option<(JsValue, Closure<dyn FnMut()>)>,
    }

    impl std::fmt::Debug for WebSleep {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("WebSleep")
                .field("deadline", &self.deadline)
                .finish()
        }
    }

    impl Future for WebSleep {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            loop {
                let left = self.deadline - performance_now();
                if left <= 0.0 {
                    return Poll::Ready(());
                }
                {
                    let mut s = self.shared.borrow_mut();
                    if s.fired {
                        // Fired a hair early by our clock: arm again for the rest.
                        s.fired = false;
                        drop(s);
                        self.armed = None;
                        continue;
                    }
                    s.waker = Some(cx.waker().clone());
                }
                if self.armed.is_none() {
                    let shared = self.shared.clone();
                    let cb = Closure::<dyn FnMut()>::new(move || {
                        let w = {
                            let mut s = shared.borrow_mut();
                            s.fired = true;
                            s.waker.take()
                        };
                        if let Some(w) = w {
                            w.wake();
                        }
                    });
                    // setTimeout fires at once beyond 2^31 - 1 ms: arm for at most a day, and
                    // the loop above arms again for the rest.
                    let id = set_timeout(cb.as_ref().unchecked_ref(), left.min(MAX_ARM_MS).ceil());
                    self.armed = Some((id, cb));
                }
                return Poll::Pending;
            }
        }
    }

    impl Drop for WebSleep {
        fn drop(&mut self) {
            if let Some((id, _cb)) = self.armed.take() {
                clear_timeout(&id);
            }
        }
    }

    impl Timer for WebTimer {
        type Sleep = WebSleep;
        fn now(&self) -> f64 {
            performance_now()
        }
        fn sleep_until(&self, deadline: f64) -> WebSleep {
            WebSleep {
                deadline,
                shared: Rc::default(),
                armed: None,
            }
        }
    }
}
