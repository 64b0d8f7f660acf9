//! Bounded compilation: a module is compiled under a budget, so that one hostile module
//! cannot take the host's memory or time.
//!
//! Compiling is the one step of loading whose cost grows with what the module's author chose:
//! Cranelift needs memory in proportion to the size and shape of each function (a megabyte of
//! nested blocks takes some 320 MiB). Two bounds apply, in order:
//!
//! 1. **Static checks** ([`check_complexity`]): the module's code is read (not validated, not
//!    compiled: constant memory, milliseconds) and refused with [`LoadError::TooComplex`] when
//!    a function body is too large, blocks nest too deeply, a function declares too many
//!    locals, or there are too many functions or too much code in all
//!    ([`CompileLimits::complexity`]).
//! 2. **A compiler process** ([`CompileWorker`]), when the embedder provides one: the module
//!    is compiled by a child process whose data segment is limited to
//!    [`CompileLimits::memory_bytes`] (`RLIMIT_DATA`: every heap allocation counts) and which
//!    is killed after [`CompileLimits::time`]. It writes the compiled code
//!    ([`wasmtime::Engine::precompile_component`]) to its standard output; the host loads it
//!    into its own engine. Whatever the module, the host's own memory grows by the module's
//!    compiled code at most. Without a worker, modules are compiled in the host's process
//!    under the static checks only.
//!
//! The worker is the embedder's own binary started with arguments of its choosing (for
//! `capt-host`: `capt-host compile-worker`), which calls [`run_compile_worker`]; this crate
//! defines both ends of the protocol: on standard input, the memory limit (8 bytes, little
//! endian) and then the module; on standard output, the compiled code; exit code 0 when it
//! compiled, [`WORKER_COMPILE_FAILED`] with the error on standard error when the module does
//! not compile.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmparser::{Operator, Parser, Payload};

use crate::engine::{self, Engine};
use crate::wasm::LoadError;

/// The `capt-host` flag that sets the memory budget of a compile (named in error messages).
pub const COMPILE_MEMORY_FLAG: &str = "--compile-memory-limit";
/// The `capt-host` flag that sets the time budget of a compile.
pub const COMPILE_TIME_FLAG: &str = "--compile-time-limit";

/// The exit code of a worker whose module does not compile (its error is on standard error).
pub const WORKER_COMPILE_FAILED: i32 = 3;

/// How much of a worker's standard error is kept for the error message.
const STDERR_BYTES: u64 = 16 << 10;

/// How often the host looks whether the worker has ended.
const POLL: Duration = Duration::from_millis(5);

/// The budget of compiling one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileLimits {
    /// The data segment (heap) a compiler process may use, in bytes. Default 128 MiB: the
    /// default policy (300 KB) compiles in about a quarter of it, and the compiler and the
    /// operator it serves fit the Deployment's 256 MiB limit together.
    pub memory_bytes: u64,
    /// How long a compiler process may run before it is killed. Default 60 s: the default
    /// policy compiles in about a second on one core.
    pub time: Duration,
    /// The static checks, applied before anything is compiled.
    pub complexity: Complexity,
}

impl Default for CompileLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 128 << 20,
            time: Duration::from_secs(60),
            complexity: Complexity::default(),
        }
    }
}

/// The shape of code a module may have (checked by [`check_complexity`]). The defaults are
/// about ten times what the default policy, a 300 KB Rust component built at opt-level 3 with
/// LTO, has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complexity {
    /// Bytes of one function body. Default 256 KiB (the default policy's largest: 40 KiB).
    pub function_bytes: u64,
    /// Bytes of all function bodies. Default 8 MiB.
    pub code_bytes: u64,
    /// Functions of all core modules. Default 20 000.
    pub functions: u64,
    /// Locals one function declares. Default 2 000.
    pub locals: u64,
    /// How deeply blocks (`block`, `loop`, `if`, `try`) may nest in one function. Default
    /// 256.
    pub nesting: u64,
}

impl Default for Complexity {
    fn default() -> Self {
        Self {
            function_bytes: 256 << 10,
            code_bytes: 8 << 20,
            functions: 20_000,
            locals: 2_000,
            nesting: 256,
        }
    }
}

/// What [`LoadError::TooComplex`] found too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComplexityMeasure {
    /// [`Complexity::function_bytes`].
    FunctionBytes,
    /// [`Complexity::code_bytes`].
    CodeBytes,
    /// [`Complexity::functions`].
    Functions,
    /// [`Complexity::locals`].
    Locals,
    /// [`Complexity::nesting`].
    Nesting,
}

impl std::fmt::Display for ComplexityMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FunctionBytes => "the size of a function body (bytes)",
            Self::CodeBytes => "the size of all function bodies (bytes)",
            Self::Functions => "the number of functions",
            Self::Locals => "the number of locals of a function",
            Self::Nesting => "the nesting depth of blocks in a function",
        })
    }
}

/// Refuses a module whose code is larger or more deeply nested than `limits` allow, reading
/// it without validating or compiling it. Malformed code is left to the compiler, which
/// reports it.
pub fn check_complexity(bytes: &[u8], limits: &Complexity) -> Result<(), LoadError> {
    let too_complex = |what, limit, actual| {
        Err(LoadError::TooComplex {
            what,
            limit,
            actual,
        })
    };
    let (mut functions, mut code_bytes) = (0_u64, 0_u64);
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else {
            // Malformed: the compiler says what is wrong.
            if payload.is_err() {
                return Ok(());
            }
            continue;
        };
        functions += 1;
        if functions > limits.functions {
            return too_complex(ComplexityMeasure::Functions, limits.functions, functions);
        }
        let size = body.range().len() as u64;
        code_bytes += size;
        if size > limits.function_bytes {
            return too_complex(
                ComplexityMeasure::FunctionBytes,
                limits.function_bytes,
                size,
            );
        }
        if code_bytes > limits.code_bytes {
            return too_complex(ComplexityMeasure::CodeBytes, limits.code_bytes, code_bytes);
        }
        let Ok(locals) = body.get_locals_reader() else {
            return Ok(());
        };
        let mut declared = 0_u64;
        for group in locals {
            let Ok((count, _)) = group else {
                return Ok(());
            };
            declared += u64::from(count);
        }
        if declared > limits.locals {
            return too_complex(ComplexityMeasure::Locals, limits.locals, declared);
        }
        let Ok(mut operators) = body.get_operators_reader() else {
            return Ok(());
        };
        let mut depth = 0_u64;
        while !operators.eof() {
            match operators.read() {
                Ok(
                    Operator::Block { .. }
                    | Operator::Loop { .. }
                    | Operator::If { .. }
                    | Operator::Try { .. }
                    | Operator::TryTable { .. },
                ) => {
                    depth += 1;
                    if depth > limits.nesting {
                        return too_complex(ComplexityMeasure::Nesting, limits.nesting, depth);
                    }
                }
                Ok(Operator::End) => depth = depth.saturating_sub(1),
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// How to start a compiler process: the embedder's binary and the arguments that make it call
/// [`run_compile_worker`]. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileWorker {
    program: PathBuf,
    args: Vec<OsString>,
}

impl CompileWorker {
    /// A worker started as `program args...`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Compiles `bytes` in a new worker under `limits`: the compiled code, for
    /// [`crate::Engine`]s of this build.
    pub(crate) fn precompile(
        &self,
        bytes: &[u8],
        limits: &CompileLimits,
    ) -> Result<Vec<u8>, LoadError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(LoadError::CompileWorker)?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill(&mut child);
            return Err(LoadError::CompileWorker(std::io::Error::other(
                "the compiler process has no standard streams",
            )));
        };
        let mut input = limits.memory_bytes.to_le_bytes().to_vec();
        input.extend_from_slice(bytes);
        // A worker that dies early stops reading: the write fails, the exit status tells why.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        // The compiled code cannot be larger than the memory the worker held it in.
        let code = reader(stdout, limits.memory_bytes.saturating_add(1));
        let messages = reader(stderr, STDERR_BYTES);
        let status = wait(&mut child, limits.time);
        let _ = writer.join();
        let code = joined(code);
        let messages = String::from_utf8_lossy(&joined(messages)).trim().to_owned();
        let status = match status {
            Ok(status) => status,
            Err(Wait::TimedOut) => {
                return Err(LoadError::CompileTimeExceeded { limit: limits.time });
            }
            Err(Wait::Io(error)) => return Err(LoadError::CompileWorker(error)),
        };
        match status.code() {
            Some(0) if code.len() as u64 <= limits.memory_bytes => Ok(code),
            Some(WORKER_COMPILE_FAILED) => Err(LoadError::Compile(messages.into())),
            _ => Err(LoadError::CompileMemoryExceeded {
                limit_bytes: limits.memory_bytes,
                status: status.to_string(),
                messages,
            }),
        }
    }
}

/// Why [`wait`] gave up.
enum Wait {
    TimedOut,
    Io(std::io::Error),
}

/// Waits for `child` to end, killing it after `limit`.
fn wait(child: &mut Child, limit: Duration) -> Result<ExitStatus, Wait> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() >= limit => {
                kill(child);
                return Err(Wait::TimedOut);
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(error) => {
                kill(child);
                return Err(Wait::Io(error));
            }
        }
    }
}

/// Kills and reaps `child` (it may have ended already).
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `stream` to its end on a thread, keeping at most `limit` bytes.
fn reader(stream: impl Read + Send + 'static, limit: u64) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut stream = stream.take(limit);
        let _ = stream.read_to_end(&mut bytes);
        // Drain the rest so that the writer never blocks on a full pipe.
        let _ = std::io::copy(&mut stream.into_inner(), &mut std::io::sink());
        bytes
    })
}

fn joined(reader: JoinHandle<Vec<u8>>) -> Vec<u8> {
    reader.join().unwrap_or_default()
}

/// Why a compiler process could not compile its module.
#[derive(Debug, thiserror::Error)]
pub enum CompileWorkerError {
    /// Its input or output failed.
    #[error("the compiler process could not read its module or write the compiled code")]
    Io(#[source] std::io::Error),
    /// Its memory limit could not be set.
    #[error("could not limit the compiler process's memory")]
    Limit(#[source] std::io::Error),
    /// The input ended before the memory limit.
    #[error("the compiler process's input ended before its memory limit")]
    Truncated,
    /// The module did not compile.
    #[error("the component is invalid or could not be compiled")]
    Compile(#[source] wasmtime::Error),
}

/// The worker's end of the protocol (see the module documentation): reads the memory limit
/// from `input` and limits this process's data segment to it, then reads the module and
/// writes its compiled code to `output`. The embedder's binary calls it in the process
/// [`CompileWorker`] starts, and exits with [`WORKER_COMPILE_FAILED`] on
/// [`CompileWorkerError::Compile`].
pub fn run_compile_worker(input: impl Read, output: impl Write) -> Result<(), CompileWorkerError> {
    serve(input, output, limit_data)
}

/// [`run_compile_worker`], with the memory limit applied by `limit` (tests do not limit
/// their own process).
fn serve(
    mut input: impl Read,
    mut output: impl Write,
    limit: impl FnOnce(u64) -> std::io::Result<()>,
) -> Result<(), CompileWorkerError> {
    let mut bytes = [0; 8];
    input
        .read_exact(&mut bytes)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => CompileWorkerError::Truncated,
            _ => CompileWorkerError::Io(error),
        })?;
    limit(u64::from_le_bytes(bytes)).map_err(CompileWorkerError::Limit)?;
    let mut module = Vec::new();
    input
        .read_to_end(&mut module)
        .map_err(CompileWorkerError::Io)?;
    let engine =
        wasmtime::Engine::new(&engine::code_config()).map_err(CompileWorkerError::Compile)?;
    let code = engine
        .precompile_component(&module)
        .map_err(CompileWorkerError::Compile)?;
    drop(module);
    output
        .write_all(&code)
        .and_then(|()| output.flush())
        .map_err(CompileWorkerError::Io)
}

/// Limits this process's data segment (`RLIMIT_DATA`: heap and other private writable
/// memory) to `bytes`.
#[cfg(unix)]
fn limit_data(bytes: u64) -> std::io::Result<()> {
    let bytes = libc::rlim_t::try_from(bytes).unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the one `rlimit` passed by reference, which lives through the
    // call; it changes no memory of this process.
    #[allow(unsafe_code)]
    let result = unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// No resource limits: the time limit and the static checks remain.
#[cfg(not(unix))]
fn limit_data(_bytes: u64) -> std::io::Result<()> {
    Ok(())
}

/// Compiles `bytes` for `engine` under its [`CompileLimits`]: in its worker if it has one,
/// else in this process.
pub(crate) fn compile(
    engine: &Engine,
    bytes: &[u8],
) -> Result<wasmtime::component::Component, LoadError> {
    let limits = &engine.limits().compile;
    let Some(worker) = engine.compile_worker() else {
        return wasmtime::component::Component::new(engine.wasmtime(), bytes)
            .map_err(|e| LoadError::Compile(e.into()));
    };
    let code = worker.precompile(bytes, limits)?;
    // SAFETY: `code` is what `run_compile_worker` wrote: `precompile_component` of an engine
    // with this engine's code settings (`engine::code_config`), in a process of the
    // embedder's own binary, read back whole through a pipe only the two processes hold.
    // wasmtime also checks that it was compiled with compatible settings and refuses it
    // otherwise.
    #[allow(unsafe_code)]
    let component =
        unsafe { wasmtime::component::Component::deserialize(engine.wasmtime(), &code) };
    component.map_err(|e| LoadError::Compile(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one function whose body is `body` (WAT).
    fn module(locals: &str, body: &str) -> Vec<u8> {
        wat::parse_str(format!("(module (func {locals} {body}))")).unwrap()
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", "(block ".repeat(depth), ")".repeat(depth))
    }

    #[test]
    fn code_within_the_limits_passes() {
        let limits = Complexity::default();
        assert!(check_complexity(&module("(local i32)", &nested(200)), &limits).is_ok());
    }

    #[test]
    fn each_measure_is_refused_past_its_limit_with_what_and_how_much() {
        let limits = Complexity {
            function_bytes: 1_000,
            code_bytes: 1_500,
            functions: 3,
            locals: 10,
            nesting: 20,
        };
        let refused = |bytes: Vec<u8>| match check_complexity(&bytes, &limits) {
            Err(LoadError::TooComplex {
                what,
                limit,
                actual,
            }) => (what, limit, actual),
            other => panic!("not refused for complexity: {other:?}"),
        };
        assert_eq!(
            refused(module("", &nested(21))),
            (ComplexityMeasure::Nesting, 20, 21)
        );
        assert_eq!(
            refused(module(
                "(local i32 i32 i32 i32 i32 i32) (local i64 i64 i64 i64 i64)",
                ""
            )),
            (ComplexityMeasure::Locals, 10, 11)
        );
        let (what, _, actual) = refused(module("", &"(drop (i32.const 1))".repeat(400)));
        assert_eq!(what, ComplexityMeasure::FunctionBytes);
        assert!(actual > 1_000, "{actual}");
        let half = "(drop (i32.const 1))".repeat(300);
        let two = wat::parse_str(format!("(module (func {half}) (func {half}))")).unwrap();
        assert_eq!(refused(two).0, ComplexityMeasure::CodeBytes);
        let four = wat::parse_str("(module (func) (func) (func) (func))").unwrap();
        assert_eq!(refused(four), (ComplexityMeasure::Functions, 3, 4));
        // Sequential blocks do not nest.
        assert!(check_complexity(&module("", &nested(15).repeat(10)), &limits).is_ok());
    }

    #[test]
    fn the_error_names_the_measure_its_limit_and_the_module_s_value() {
        let error = check_complexity(
            &module("", &nested(300)),
            &Complexity {
                nesting: 256,
                ..Complexity::default()
            },
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("nesting depth"), "{message}");
        assert!(message.contains("256"), "{message}");
        assert_eq!(error.kind(), "too_complex");
    }

    #[test]
    fn malformed_code_is_left_to_the_compiler() {
        let mut bytes = module("", &nested(3));
        bytes.truncate(bytes.len() - 2);
        assert!(check_complexity(&bytes, &Complexity::default()).is_ok());
        assert!(check_complexity(b"\0asm garbage", &Complexity::default()).is_ok());
    }

    #[test]
    fn the_worker_protocol_compiles_a_component_or_reports_why_not() {
        let component = wat::parse_str("(component)").unwrap();
        let mut input = (256_u64 << 20).to_le_bytes().to_vec();
        input.extend_from_slice(&component);
        let mut code = Vec::new();
        let mut limited = None;
        serve(&input[..], &mut code, |bytes| {
            limited = Some(bytes);
            Ok(())
        })
        .unwrap();
        assert_eq!(limited, Some(256 << 20));
        let engine = wasmtime::Engine::new(&engine::code_config()).unwrap();
        // SAFETY: compiled just above by an engine of the same settings.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::component::Component::deserialize(&engine, &code) };
        assert!(loaded.is_ok());

        let mut garbage = (256_u64 << 20).to_le_bytes().to_vec();
        garbage.extend_from_slice(b"\0asm\x0d\0\x01\0garbage");
        let unlimited = |_| Ok(());
        assert!(matches!(
            serve(&garbage[..], &mut Vec::new(), unlimited),
            Err(CompileWorkerError::Compile(_))
        ));
        assert!(matches!(
            serve(&[1, 2][..], &mut Vec::new(), unlimited),
            Err(CompileWorkerError::Truncated)
        ));
    }
}
