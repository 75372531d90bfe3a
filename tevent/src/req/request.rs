//! The [`Request`] trait, and what a step returns: [`Progress`] and
//! [`StepResult`].

use super::ReqError;

/// A request type: the state of one asynchronous computation.
///
/// The tutorial: [chapter 3](crate::tutorial::ch3_requests) (requests by
/// hand: steps, subrequests, end times, cancellation), [chapter
/// 5](crate::tutorial::ch5_tevent_request_macro) (the same with
/// `#[tevent_request]`, which implements this trait for you) and [chapter
/// 6](crate::tutorial::ch6_inspecting) (where a request waits, the live
/// request tree, profiles, trace hooks).
///
/// ```
/// use tevent::{Context, Progress, Req, Request};
///
/// /// Adds two numbers, "asynchronously".
/// struct Add { a: u32, b: u32 }
///
/// impl Request for Add {
///     type Output = u32;
///     type Error = std::convert::Infallible;
/// }
///
/// fn add_send(ev: &Context, a: u32, b: u32) -> Req<Add> {
///     Req::start(ev, Add { a, b }, |st, _ctl| Ok(Progress::Done(st.a + st.b)))
/// }
///
/// let ev = Context::new()?;
/// let req = add_send(&ev, 2, 3);
/// req.poll(&ev)?;
/// assert_eq!(req.recv(), Ok(5));
/// # Ok::<(), tevent::Error>(())
/// ```
pub trait Request: Sized + 'static {
    /// What the request produces.
    type Output: 'static;
    /// The request's own error type (carried in [`ReqError::User`]).
    type Error: 'static;

    /// A short name for `Debug` output and profiles (default: the type name
    /// with every module path left out, generic arguments kept:
    /// `tevent::io::ReadSome<std::os::unix::net::UnixStream>` gives
    /// `ReadSome<UnixStream>`). Override it to name a request otherwise.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use tevent::Request;
    /// use tevent::io::ReadSome;
    ///
    /// assert_eq!(ReadSome::<UnixStream>::name(), "ReadSome<UnixStream>");
    ///
    /// struct Login;
    /// impl Request for Login {
    ///     type Output = ();
    ///     type Error = std::convert::Infallible;
    ///     fn name() -> &'static str {
    ///         "login"
    ///     }
    /// }
    /// let ev = tevent::Context::new()?;
    /// let req = tevent::Req::start(&ev, Login, |_, _| Ok(tevent::Progress::Pending));
    /// assert!(format!("{req:?}").contains(r#"type: "login""#));
    /// # Ok::<(), tevent::Error>(())
    /// ```
    fn name() -> &'static str {
        short_type_name(std::any::type_name::<Self>())
    }
}

/// `full` (a `std::any::type_name`) without module paths, in every
/// generic argument too. Names of generic types are computed once per
/// process and kept (a few bytes per request type).
pub(crate) fn short_type_name(full: &'static str) -> &'static str {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    if !full.contains('<') {
        return full.rsplit("::").next().unwrap_or(full);
    }
    /// Keyed by the full name's address and length.
    static SHORT: Mutex<BTreeMap<(usize, usize), &'static str>> = Mutex::new(BTreeMap::new());
    let mut names = SHORT.lock().unwrap_or_else(|e| e.into_inner());
    names
        .entry((full.as_ptr() as usize, full.len()))
        .or_insert_with(|| Box::leak(strip_paths(full).into_boxed_str()))
}

/// Drops every `path::` prefix in a type name: each run of path segments
/// keeps its last segment (closures keep `{{closure}}`).
pub(super) fn strip_paths(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    // Where the current path began in `out`.
    let mut start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            // `<T as Trait>::Assoc` keeps its separator.
            if out.ends_with('>') {
                out.push_str("::");
                start = out.len();
            } else {
                out.truncate(start);
            }
            rest = after;
            continue;
        }
        out.push(c);
        if matches!(
            c,
            '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ' ' | '&' | '*'
        ) {
            start = out.len();
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What a step decided.
///
/// ```
/// use tevent::{Context, Progress, Req, Request};
///
/// struct Countdown(u32);
/// impl Request for Countdown {
///     type Output = &'static str;
///     type Error = std::convert::Infallible;
/// }
/// let ev = Context::new()?;
/// let now = Req::start(&ev, Countdown(0), |st, _| {
///     Ok(if st.0 == 0 { Progress::Done("liftoff") } else { Progress::Pending })
/// });
/// assert_eq!(now.poll_recv(&ev)?, Ok("liftoff"));
/// # Ok::<(), tevent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<O> {
    /// Keep waiting: something registered in this step will run the next step.
    Pending,
    /// The request is done, with this output.
    Done(O),
}

/// The result of a step of request `T`.
///
/// ```
/// use tevent::{Ctl, Progress, ReqError, Request, StepResult};
///
/// struct Parse { input: String }
/// impl Request for Parse {
///     type Output = u32;
///     type Error = std::num::ParseIntError;
/// }
/// fn parse(st: &mut Parse, _: &mut Ctl<'_, Parse>) -> StepResult<Parse> {
///     let n = st.input.trim().parse()?; // an error of its own ends the request
///     Ok(Progress::Done(n))
/// }
/// let ev = tevent::Context::new()?;
/// let r = tevent::Req::start(&ev, Parse { input: " 42 ".into() }, parse);
/// assert_eq!(r.poll_recv(&ev)?, Ok(42));
/// let r = tevent::Req::start(&ev, Parse { input: "x".into() }, parse);
/// assert!(matches!(r.poll_recv(&ev)?, Err(ReqError::User(_))));
/// # Ok::<(), tevent::Error>(())
/// ```
pub type StepResult<T> = Result<Progress<<T as Request>::Output>, ReqError<<T as Request>::Error>>;
