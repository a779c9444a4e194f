"""The bubblewrap sandbox of a grading run: what student code can see, reach and start.

:func:`wrap` turns the command of one grading run (pytest + nbval, which starts the kernel)
into a ``bwrap`` command line.  Inside:

- **namespaces**: new network (only a private loopback; nothing on the host or the network
  can be reached), PID (the run sees only its own processes; when the run ends, the kernel
  kills every process left in it), IPC and UTS namespaces; ``--die-with-parent`` and a new
  terminal session;
- **files**: the system folders (``/usr``, ``/etc``, the ``/lib*`` and ``/bin`` links), the
  Python installation and the virtual environment, read-only; the ``tumorseg`` package as a
  read-only filtered copy without the grader's hidden half (the folder :data:`HIDDEN`:
  reference solutions, expected results), notebooks and caches, imported from where the
  grader imported it; the run's own folder at :data:`INSIDE`,
  the only writable place, which also backs ``/tmp``, ``/dev/shm`` and ``$HOME``.  The
  checkout, the instructor notebook, the submissions, the grades folder, the other runs and
  the user's home are not mounted;
- **environment**: cleared, then only what the run needs (no tokens or paths of the grader);
- **limits**: a process-count limit (``RLIMIT_NPROC``, counted per sandbox: a new user
  namespace, or a uid of its own when the grader runs as root), so ``fork`` fails inside once
  it is reached; the runner (:mod:`.sandbox`) adds the memory, file-size and CPU limits.

As root, bubblewrap runs privileged (no user namespace) and a tiny launcher switches to an
unused uid (:data:`ROOT_UID_BASE` + a random offset) before the grading command starts, so the
run holds no capability and owns none of the visible files.
"""

from __future__ import annotations

import functools
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: where the run's folder appears inside the sandbox (the working directory)
INSIDE = "/grading"
#: default process-count limit (threads included) of one grading run
DEFAULT_MAX_PROCS = 256
#: the folder of the package that student code must not read (reference solutions, expected
#: results); the package copy of :func:`prepare_library` leaves it out as a whole
HIDDEN = "course/grading/hidden"
#: files of the package copy the kernel may need; notebooks and compiled caches stay out
_COPIED_SUFFIXES = (".py", ".typed")
ROOT_UID_BASE = 1_600_000_000
INSTALL_HINT = (
    "Install bubblewrap, the sandbox Flatpak uses: `sudo apt-get install bubblewrap` "
    "(Debian/Ubuntu; `sudo dnf install bubblewrap` on Fedora). Without it, only trusted "
    "notebooks may be graded, with --no-sandbox."
)
_SYSTEM = ("/usr", "/etc")
_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Runs inside the sandbox before the grading command: the process limit, then (as root) an
# unprivileged uid of its own.  -I -S: no site, no user paths.
_LAUNCHER = (
    "import os, resource, sys\n"
    "n, uid = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_NPROC, (n, n))\n"
    "if uid >= 0:\n"
    "    os.setgroups([]); os.setgid(uid); os.setuid(uid)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces on this machine."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def _bwrap_version() -> tuple[int, ...]:
    path = bwrap_path()
    if path is None:
        return ()
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g or 0) for g in match.groups()) if match else ()


def _as_root() -> bool:
    return os.geteuid() == 0


def _namespace_args() -> list[str]:
    args = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if not _as_root():
        args += ["--unshare-user", "--cap-drop", "ALL"]
        if _bwrap_version() >= (0, 8, 0):
            args.append("--disable-userns")
    return args


@functools.cache
def check_available() -> None:
    """Raise :class:`SandboxUnavailable` (with the install command) unless a sandbox starts here."""
    path = bwrap_path()
    if path is None:
        raise SandboxUnavailable(
            "`tumorseg grade` runs student code in a sandbox, but bubblewrap "
            f"(`bwrap`) is not installed. {INSTALL_HINT}"
        )
    probe = [
        path,
        *_namespace_args(),
        *_system_args(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        sys.executable,
        "-I",
        "-S",
        "-c",
        "pass",
    ]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"bubblewrap could not start ({exc}). {INSTALL_HINT}") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise SandboxUnavailable(
            f"bubblewrap is installed but cannot create its sandbox here ({why[-1] if why else done.returncode}); "
            "unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone "
            "or user.max_user_namespaces), or this is not Linux. Grade on a Linux machine "
            "where `bwrap --unshare-all --ro-bind / / true` works, or pass --no-sandbox for "
            "trusted notebooks only."
        )


@functools.cache
def _python_roots() -> tuple[str, ...]:
    """The folders the interpreter and the virtual environment live in (outside the system)."""
    roots: set[Path] = set()
    for p in (
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        Path(sys.executable).resolve().parent.parent,
    ):
        path = Path(p).resolve()
        if not any(path == Path(s) or Path(s) in path.parents for s in _SYSTEM):
            roots.add(path)
    venv = Path(sys.prefix)  # the venv path as the kernel sees it (sys.executable's symlink)
    if venv.resolve() != venv and venv.is_dir():
        roots.add(venv)
    # drop nested roots: their parent is bound already
    return tuple(sorted(str(r) for r in roots if not any(o in r.parents for o in roots)))


def _parents_args(targets: list[str]) -> list[str]:
    """``--dir`` with mode 0755 for the folders above the mount points of ``targets`` (bwrap
    would create them 0700, which the uid of a root-started run could not traverse)."""
    made: list[str] = []
    for target in targets:
        for parent in reversed(Path(target).parents):
            system = any(parent == Path(s) or Path(s) in parent.parents for s in _SYSTEM)
            if str(parent) != "/" and str(parent) not in made and not system:
                made.append(str(parent))
    args: list[str] = []
    for folder in made:
        args += ["--perms", "0755", "--dir", folder]
    return args


def _system_args() -> list[str]:
    args: list[str] = []
    for folder in _SYSTEM:
        if os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    for link in _LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    args += _parents_args([*_python_roots(), str(package_dir())])
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    return args


def package_dir() -> Path:
    """The folder of the installed ``tumorseg`` package (a checkout or site-packages)."""
    import tumorseg

    return Path(tumorseg.__file__).resolve().parent


def prepare_library(dest: Path) -> Path:
    """Copy the ``tumorseg`` package into ``dest`` without what student code must not read:
    the folder :data:`HIDDEN`, notebooks, data files and compiled caches.  The copy
    is world-readable (the sandbox may run under another uid) and mounted read-only over the
    package's own path, so imports resolve exactly as outside."""
    src = package_dir()
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if (
            not path.is_file()
            or "__pycache__" in rel.parts
            or path.suffix not in _COPIED_SUFFIXES
            or is_hidden(rel)
        ):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def is_hidden(rel: Path) -> bool:
    """Whether ``rel`` (a path inside the package) lies in the hidden folder :data:`HIDDEN`."""
    return rel.as_posix() == HIDDEN or Path(HIDDEN) in rel.parents


def seed_home(dest: Path) -> Path:
    """A template ``$HOME`` for the runs: matplotlib's font list, built once here (Keras imports
    matplotlib, which would otherwise scan the system fonts again in every run's empty home).
    Only this trusted template is copied into each run; nothing a run writes is reused."""
    mpl = dest / ".matplotlib"
    mpl.mkdir(parents=True, exist_ok=True)
    cache = Path(
        os.environ.get("MPLCONFIGDIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib"
    )
    lists = sorted(cache.glob("fontlist-v*.json")) if cache.is_dir() else []
    for path in lists:  # the grader's own cache (file names carry matplotlib's cache version)
        shutil.copyfile(path, mpl / path.name)
    if not lists:
        env = {**os.environ, "MPLCONFIGDIR": str(mpl), "MPLBACKEND": "Agg"}
        try:
            subprocess.run(
                [sys.executable, "-c", "import matplotlib.font_manager"],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=120,
            )
        except (OSError, subprocess.SubprocessError):
            pass  # no template: each run builds its own font list
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


def inside_env(extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of the run inside the sandbox: nothing of the grader's own.

    ``PYTHONPATH`` is the folder the grader imported ``tumorseg`` from, so the kernel imports
    the mounted (filtered) copy even where the environment's own install points elsewhere
    (an editable install of another checkout, which the sandbox does not mount)."""
    env = {
        "PYTHONPATH": str(package_dir().parent),
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": f"{INSIDE}/home",
        "MPLCONFIGDIR": f"{INSIDE}/home/.matplotlib",
        "TMPDIR": "/tmp",
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra)
    return env


def prepare_folder(folder: Path, home: Path | None = None) -> int:
    """Create the writable subfolders of a run folder (``home`` a copy of the template made by
    :func:`seed_home`) and hand the folder to the sandbox's uid.

    Returns the uid the launcher switches to (``-1``: keep the caller's uid)."""
    if home is not None and home.is_dir():
        shutil.copytree(home, folder / "home", dirs_exist_ok=True)
    for name in ("home", "tmp", "shm"):
        (folder / name).mkdir(exist_ok=True)
    if not _as_root():
        return -1
    uid = ROOT_UID_BASE + random.SystemRandom().randrange(1_000_000)
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)
    return uid


def wrap(
    cmd: list[str],
    folder: Path,
    library: Path,
    env: dict[str, str],
    uid: int,
    max_procs: int = DEFAULT_MAX_PROCS,
) -> list[str]:
    """The ``bwrap`` command that runs ``cmd`` (paths as seen inside) in ``folder``."""
    path = bwrap_path()
    if path is None:
        raise SandboxUnavailable(INSTALL_HINT)
    # The private /tmp comes first: a venv or checkout that lives under /tmp is mounted on top
    # of it afterwards instead of being hidden by it.
    args = [
        path,
        *_namespace_args(),
        "--bind",
        str(folder / "tmp"),
        "/tmp",
        *_system_args(),
        "--ro-bind",
        str(library),
        str(package_dir()),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(folder),
        INSIDE,
        "--bind",
        str(folder / "shm"),
        "/dev/shm",
        "--remount-ro",
        "/",
        "--chdir",
        INSIDE,
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [
        *args,
        "--",
        sys.executable,
        "-I",
        "-S",
        "-c",
        _LAUNCHER,
        str(max_procs),
        str(uid),
        *cmd,
    ]
