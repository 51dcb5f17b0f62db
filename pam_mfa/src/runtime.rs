//! The async runtime the module's D-Bus connection runs on: a private
//! zruntime runtime, one per authentication, driven only inside its own
//! `block_on`.
//!
//! Why not zbus's default runtime (`zbus::block_on` with the thread's own
//! zruntime runtime): when a `block_on` returns while a connection is still
//! alive, zruntime hands the connection's work to a helper thread
//! ("zruntime") until the next `block_on`. The module must keep one
//! connection open across the PAM conversation (a new connection per step
//! costs ~0.4 ms and a bus round trip in mfad), and the conversation must
//! run outside any `block_on` (it is blocking C code that may itself use an
//! event loop). With the default runtime that starts the helper, and the
//! helper exits on its own schedule after the last `block_on` returns, so
//! the thread can still be there when `pam_authenticate` returns.
//!
//! A runtime made by `SharedRuntime::new()` has no helper at all: its tasks,
//! timers and I/O run only while a thread is inside `block_on` on it. So
//! between the D-Bus steps nothing runs (incoming messages wait in the
//! socket), no thread is ever started, and dropping the connection and then
//! the runtime closes every descriptor (epoll, timerfd, a pipe pair, the
//! socket). Measured in `tests/hygiene.rs`.
//!
//! This adapter is what zbus's own zruntime backend does, minus the parts
//! the module never uses: TCP (mfad authorizes by the caller's Unix uid,
//! which only a unix socket carries) and child processes (`unixexec:`).
//! The default `spawn_blocking` (zruntime's pool, whose threads linger ten
//! seconds) is only reached for TCP, nonce files, autolaunch and server-side
//! peer credentials, none of which a client on a unix socket uses.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use zbus::runtime::{traits, Interest, IoSource};

/// A zbus runtime over a private zruntime runtime with no helper thread.
#[derive(Clone, Debug)]
pub struct PrivateRuntime(pub zruntime::SharedRuntime);

/// A socket registered on the runtime's reactor.
pub struct Registration(zruntime::Registration<zruntime::Shared>);

/// A task on the runtime; dropping it cancels the task.
pub struct Task<T>(zruntime::Task<T, zruntime::Shared>);

impl traits::PollIo for Registration {
    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        operation: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let interest = match interest {
            Interest::Readable => zruntime::Interest::Readable,
            // `Interest` is non-exhaustive; anything else is a write wait.
            _ => zruntime::Interest::Writable,
        };
        self.0.poll_io(cx, interest, operation)
    }
}

impl<T> Future for Task<T> {
    type Output = io::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl<T: Send + 'static> traits::TaskHandle<T> for Task<T> {
    fn detach(self) {
        self.0.detach();
    }
}

impl traits::Runtime for PrivateRuntime {
    type RegisteredIoSource = Registration;
    type Sleep = zruntime::Sleep<zruntime::Shared>;
    type Task<T>
        = Task<T>
    where
        T: Send + 'static;

    fn register_io_source(&self, source: IoSource) -> io::Result<Registration> {
        self.0.register(source).map(Registration)
    }

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.0.sleep(duration)
    }

    fn spawn<T>(&self, name: &str, future: impl Future<Output = T> + Send + 'static) -> Task<T>
    where
        T: Send + 'static,
    {
        Task(self.0.spawn(name.to_owned(), future))
    }

    async fn connect_tcp(&self, _address: std::net::SocketAddr) -> io::Result<IoSource> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pam_mfa connects to unix: bus addresses only",
        ))
    }

    fn connect_unix(&self, path: &Path) -> impl Future<Output = io::Result<IoSource>> + Send {
        let address = unix_socket_address(path);
        async move {
            let stream = zruntime::net::unix::UnixStream::<zruntime::Shared>::connect_addr(
                &self.0, &address?,
            )
            .await?
            .into_std();
            Ok(IoSource::from(std::os::fd::OwnedFd::from(stream)))
        }
    }

    fn spawn_process(
        &self,
        _command: Command,
        _stdin: Stdio,
        _stdout: Stdio,
        _stderr: Stdio,
    ) -> io::Result<Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send + 'static>>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pam_mfa runs no helper processes",
        ))
    }
}

/// The socket address `path` names: a leading zero byte is zbus's way of
/// passing an abstract name (`unix:abstract=`), anything else a file.
fn unix_socket_address(path: &Path) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::SocketAddr;

    match path.as_os_str().as_bytes().strip_prefix(b"\0") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(path),
    }
}
