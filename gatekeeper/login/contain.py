"""Containment of an allowed program: Landlock + seccomp + rlimits, unprivileged.

Imported only when a contained program (``sandbox = true``) is about to be
exec'd, so an uncontained login pays nothing for it. Standard library only:
the kernel interfaces are called through :mod:`ctypes` (there is no compiler
on the target; see docs/threat-model.md, "Allowed programs", for why no PyPI
binding is used).

Two steps, split around the audit record (SPEC §5: the record is written
before exec, and containment must not stop it from being written):

1. :func:`prepare` - before the record: probe the Landlock ABI, resolve the
   binary and its ELF interpreter, open every rule's path and build the
   ruleset. Anything that fails here is :class:`ContainmentError` and the
   connection is denied (``containment_unavailable``, exit 78).
2. :func:`apply` - after the record, right before ``execve``: close every
   file descriptor but 0, 1, 2; ``PR_SET_NO_NEW_PRIVS``;
   ``landlock_restrict_self``; the seccomp filter; ``RLIMIT_CORE = 0``. These
   cannot be undone by the program. (``RLIMIT_NPROC = 0`` would also stop
   threads - vim's timer thread fails with E1286 - so process creation is
   denied by the filter instead: fork, vfork, clone without CLONE_THREAD.)

What the program may do afterwards (docs/threat-model.md):

* read files and list directories anywhere DAC lets the guest (Landlock
  ``READ_FILE | READ_DIR`` beneath every top-level directory but ``/dev``, where
  only its terminal and ``/dev/null``, ``zero``, ``full``, ``random``,
  ``urandom``: the guest's other ptys would show another login's keystrokes);
* execute exactly its resolved binary and that binary's ELF interpreter
  (shared libraries are opened for reading and mmap'd, which Landlock does
  not check as execution);
* write, create, remove and rename only beneath the ``write`` paths (refused
  when one is, or passes through, a symlink: an earlier session could plant one), and
  write to its terminal and ``/dev/null``;
* no socket of any family (seccomp), so no TCP, no Unix socket - in
  particular not the tmux server's (Landlock ABI 7 does not handle
  ``connect`` to a pathname Unix socket, seccomp does); no ``io_uring``,
  ``ptrace``, ``process_vm_*``, ``pidfd_getfd``, ``memfd_create``,
  ``execveat``, ``unshare``, ``setns``; no new process (fork, vfork, clone
  without ``CLONE_THREAD``; ``clone3`` answers ENOSYS);
* signals and abstract Unix sockets scoped to its own domain (ABI 6+).
"""

from __future__ import annotations

import ctypes
import os
import resource
import stat
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The oldest Landlock ABI we accept; older kernels deny contained programs.
#: ABI 1 already handles execute and every write right; ``truncate(2)`` (ABI 3)
#: is denied by the seccomp filter on older kernels instead.
MIN_ABI: Final = 1

# Constants of linux/landlock.h
_CREATE_RULESET_VERSION: Final = 1 << 0
_RULE_PATH_BENEATH: Final = 1
_SYS_CREATE_RULESET: Final = 444  # the same number on every architecture
_SYS_ADD_RULE: Final = 445
_SYS_RESTRICT_SELF: Final = 446

FS_EXECUTE: Final = 1 << 0
FS_WRITE_FILE: Final = 1 << 1
FS_READ_FILE: Final = 1 << 2
FS_READ_DIR: Final = 1 << 3
FS_REMOVE_DIR: Final = 1 << 4
FS_REMOVE_FILE: Final = 1 << 5
FS_MAKE_CHAR: Final = 1 << 6
FS_MAKE_DIR: Final = 1 << 7
FS_MAKE_REG: Final = 1 << 8
FS_MAKE_SOCK: Final = 1 << 9
FS_MAKE_FIFO: Final = 1 << 10
FS_MAKE_BLOCK: Final = 1 << 11
FS_MAKE_SYM: Final = 1 << 12
FS_REFER: Final = 1 << 13  # ABI 2
FS_TRUNCATE: Final = 1 << 14  # ABI 3
FS_IOCTL_DEV: Final = 1 << 15  # ABI 5
NET_BIND_TCP: Final = 1 << 0  # ABI 4
NET_CONNECT_TCP: Final = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET: Final = 1 << 0  # ABI 6
SCOPE_SIGNAL: Final = 1 << 1

_FS_ABI1: Final = (1 << 13) - 1
#: Rights a rule on a regular file (not a directory) may carry.
_FILE_RIGHTS: Final = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

# Constants for prctl(2) and seccomp(2)
_PR_SET_NO_NEW_PRIVS: Final = 38
_PR_SET_SECCOMP: Final = 22
_SECCOMP_MODE_FILTER: Final = 2
_SECCOMP_RET_ALLOW: Final = 0x7FFF0000
_SECCOMP_RET_ERRNO: Final = 0x00050000
_SECCOMP_RET_KILL_PROCESS: Final = 0x80000000
_EPERM: Final = 1

AUDIT_ARCH_X86_64: Final = 0xC000003E
AUDIT_ARCH_AARCH64: Final = 0xC00000B7
_X32_BIT: Final = 0x40000000

#: Syscalls the filter refuses with EPERM, by name; numbers per architecture below.
DENIED_SYSCALLS: Final = (
    "socket",  # every family: no TCP, no Unix socket (tmux), no netlink
    # A socketpair(2) datagram socket can still sendto() a pathname socket
    # (journald's, /dev/log): Landlock <= 7 does not check that either.
    "socketpair",
    "io_uring_setup",  # io_uring can open sockets and files behind seccomp's back
    "io_uring_enter",
    "io_uring_register",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",  # steal a descriptor (e.g. a socket) from another process
    "fork",  # no new process: fork, vfork and clone without CLONE_THREAD (below)
    "vfork",
    "memfd_create",  # anonymous executable files
    "execveat",  # fexecve of a descriptor; execve(2) itself stays, Landlock-checked
    "unshare",
    "setns",
    "userfaultfd",
    "bpf",
    "perf_event_open",
    "open_tree",
    "fsopen",
    "move_mount",
    "mount",
    # request_key(2) makes the kernel run /sbin/request-key (keyutils) outside the
    # sandbox; add_key/keyctl write the uid's shared keyrings (red-team finding).
    "request_key",
    "add_key",
    "keyctl",
    # System V IPC objects are shared with every process of the uid, outside the
    # domain; nothing contained needs them.
    "shmget",
    "msgget",
    "semget",
)
#: Denied only when the Landlock ABI is older than 3 (no ``TRUNCATE`` right).
TRUNCATE_SYSCALL: Final = "truncate"

_SYSCALLS: Final[dict[int, dict[str, int]]] = {
    AUDIT_ARCH_X86_64: {
        "socket": 41,
        "fork": 57,
        "vfork": 58,
        "clone": 56,
        "clone3": 435,
        "socketpair": 53,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_getfd": 438,
        "memfd_create": 319,
        "execveat": 322,
        "unshare": 272,
        "setns": 308,
        "userfaultfd": 323,
        "bpf": 321,
        "perf_event_open": 298,
        "open_tree": 428,
        "fsopen": 430,
        "move_mount": 429,
        "mount": 165,
        "request_key": 249,
        "add_key": 248,
        "keyctl": 250,
        "shmget": 29,
        "msgget": 68,
        "semget": 64,
        "truncate": 76,
    },
    AUDIT_ARCH_AARCH64: {
        "socket": 198,
        "clone": 220,
        "clone3": 435,
        "socketpair": 199,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_getfd": 438,
        "memfd_create": 279,
        "execveat": 281,
        "unshare": 97,
        "setns": 268,
        "userfaultfd": 282,
        "bpf": 280,
        "perf_event_open": 241,
        "open_tree": 428,
        "fsopen": 430,
        "move_mount": 429,
        "mount": 40,
        "request_key": 218,
        "add_key": 217,
        "keyctl": 219,
        "shmget": 194,
        "msgget": 186,
        "semget": 190,
        "truncate": 45,
    },
}
_MACHINES: Final = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}


class ContainmentError(Exception):
    """Containment cannot be applied; the program must not run."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One Landlock path-beneath rule: ``path`` and the rights beneath it."""

    path: str
    access: int


@dataclass(frozen=True, slots=True)
class Ruleset:
    """What the kernel is asked for: handled rights, scopes and rules."""

    abi: int
    handled_fs: int
    handled_net: int
    scoped: int
    rules: tuple[Rule, ...]


def handled_fs(abi: int) -> int:
    """Every filesystem right the given Landlock ABI knows."""
    rights = _FS_ABI1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def write_rights(abi: int, *, directory: bool) -> int:
    """Rights beneath a declared ``write`` path: all but execute and device/socket nodes."""
    rights = handled_fs(abi) & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_MAKE_SOCK)
    rights &= ~FS_IOCTL_DEV
    return rights if directory else rights & _FILE_RIGHTS


def build_ruleset(
    abi: int,
    *,
    executables: Sequence[str],
    write: Sequence[tuple[str, bool]],
    terminals: Sequence[str],
    readable: Sequence[tuple[str, bool]] = (("/", True),),
) -> Ruleset:
    """The ruleset for one program (pure; ``write`` is ``(path, is_directory)``).

    ``readable`` are ``(path, is_directory)`` it may read (:func:`readable_roots`:
    everything but ``/dev``, whose other terminals the guest's uid may still open).
    """
    if abi < MIN_ABI:
        raise ContainmentError(f"Landlock ABI {abi} is older than {MIN_ABI}")
    fs = handled_fs(abi)
    rules = [
        Rule(path, FS_READ_FILE | FS_READ_DIR if is_dir else FS_READ_FILE)
        for path, is_dir in readable
    ]
    rules += [Rule(path, FS_EXECUTE | FS_READ_FILE) for path in executables]
    rules += [Rule(path, write_rights(abi, directory=is_dir)) for path, is_dir in write]
    tty = FS_READ_FILE | FS_WRITE_FILE | (FS_IOCTL_DEV if abi >= 5 else 0)
    rules += [Rule(path, tty & fs) for path in terminals]
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return Ruleset(abi, fs, net, scoped, tuple(rules))


# --- seccomp -------------------------------------------------------------------

_BPF_LD_W_ABS: Final = 0x20
_BPF_JEQ_K: Final = 0x15
_BPF_JGE_K: Final = 0x35
_BPF_JSET_K: Final = 0x45
_BPF_RET_K: Final = 0x06
_OFF_NR: Final = 0
_OFF_ARCH: Final = 4
_OFF_ARG0: Final = 16  # low 32 bits of args[0] (little-endian: x86_64, aarch64)
_CLONE_THREAD: Final = 0x00010000
_ENOSYS: Final = 38


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def seccomp_program(arch: int, abi: int) -> bytes:
    """The BPF filter: wrong arch or x32 -> EPERM for everything; listed calls -> EPERM.

    Any architecture but ``arch`` (e.g. the i386 ``int 0x80`` entry on x86_64)
    is refused outright, so a second syscall table cannot bypass the list.
    """
    if arch not in _SYSCALLS:
        raise ContainmentError(f"seccomp: unsupported architecture {arch:#x}")
    table = _SYSCALLS[arch]
    names = list(DENIED_SYSCALLS)
    if abi < 3:
        names.append(TRUNCATE_SYSCALL)
    numbers = [table[name] for name in names if name in table]  # aarch64 has no fork/vfork
    deny = _SECCOMP_RET_ERRNO | _EPERM
    code = [_insn(_BPF_LD_W_ABS, 0, 0, _OFF_ARCH), _insn(_BPF_JEQ_K, 1, 0, arch)]
    code.append(_insn(_BPF_RET_K, 0, 0, deny))
    code.append(_insn(_BPF_LD_W_ABS, 0, 0, _OFF_NR))
    if arch == AUDIT_ARCH_X86_64:
        code.append(_insn(_BPF_JGE_K, 0, 1, _X32_BIT))
        code.append(_insn(_BPF_RET_K, 0, 0, deny))
    # clone(2) makes a thread (allowed: same process, same sandbox) or a process
    # (denied); clone3(2) hides its flags in memory, so it answers ENOSYS and libc
    # falls back to clone(2).
    code.append(_insn(_BPF_JEQ_K, 0, 4, table["clone"]))
    code.append(_insn(_BPF_LD_W_ABS, 0, 0, _OFF_ARG0))
    code.append(_insn(_BPF_JSET_K, 0, 1, _CLONE_THREAD))
    code.append(_insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    code.append(_insn(_BPF_RET_K, 0, 0, deny))
    code.append(_insn(_BPF_JEQ_K, 0, 1, table["clone3"]))
    code.append(_insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | _ENOSYS))
    for number in numbers:
        code.append(_insn(_BPF_JEQ_K, 0, 1, number))
        code.append(_insn(_BPF_RET_K, 0, 0, deny))
    code.append(_insn(_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW))
    return b"".join(code)


def machine_arch(machine: str | None = None) -> int:
    """The AUDIT_ARCH value for this machine; :class:`ContainmentError` if unsupported."""
    name = os.uname().machine if machine is None else machine
    if name not in _MACHINES:
        raise ContainmentError(f"containment supports x86_64 and aarch64, not {name!r}")
    return _MACHINES[name]


# --- ELF ------------------------------------------------------------------------

_PT_INTERP: Final = 3
_ELF_MAGIC: Final = b"\x7fELF"


def elf_interpreter(data: bytes) -> str | None:
    """The ``PT_INTERP`` path of an ELF image, ``None`` for a static binary.

    :class:`ContainmentError` if ``data`` is not a well-formed ELF header.
    """
    if data[:4] != _ELF_MAGIC or len(data) < 64:
        raise ContainmentError("not an ELF file")
    bits, order = data[4], data[5]
    if bits not in (1, 2) or order not in (1, 2):
        raise ContainmentError("unknown ELF class or byte order")
    end = "<" if order == 1 else ">"
    if bits == 2:
        phoff, phentsize, phnum = (
            struct.unpack_from(f"{end}Q", data, 32)[0],
            *struct.unpack_from(f"{end}HH", data, 54),
        )
        entry = f"{end}IIQQQQQQ"
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(f"{end}I", data, 28)[0],
            *struct.unpack_from(f"{end}HH", data, 42),
        )
        entry = f"{end}IIIIIIII"
    if phentsize < struct.calcsize(entry):
        raise ContainmentError("bad ELF program header size")
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + phentsize > len(data):
            raise ContainmentError("ELF program headers beyond the file")
        fields = struct.unpack_from(entry, data, offset)
        if fields[0] != _PT_INTERP:
            continue
        p_offset, p_filesz = (fields[2], fields[5]) if bits == 2 else (fields[1], fields[4])
        raw = data[p_offset : p_offset + p_filesz].rstrip(b"\x00")
        if not raw.startswith(b"/") or b"\x00" in raw:
            raise ContainmentError("bad ELF interpreter path")
        return os.fsdecode(raw)
    return None


def executables(binary: str) -> tuple[str, ...]:
    """The resolved binary and what the kernel execs for it (ELF interpreter, ``#!``)."""
    found: list[str] = []
    path = os.path.realpath(binary)
    for _ in range(3):  # a script, its interpreter, that one's loader
        try:
            with open(path, "rb") as handle:
                head = handle.read(1 << 16)
        except OSError as error:
            raise ContainmentError(f"{path}: {error.strerror}") from None
        found.append(path)
        if head.startswith(b"#!"):
            line = head[2:].split(b"\n", 1)[0].strip().split()
            if not line or not line[0].startswith(b"/"):
                raise ContainmentError(f"{path}: bad #! line")
            path = os.path.realpath(os.fsdecode(line[0]))
            continue
        interpreter = elf_interpreter(head)
        if interpreter is None:
            break
        path = os.path.realpath(interpreter)
    return tuple(dict.fromkeys(found))


# --- the kernel ------------------------------------------------------------------


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (
        ("allowed_access", ctypes.c_uint64),
        ("parent_fd", ctypes.c_int32),
    )


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("len", ctypes.c_ushort),
        ("filter", ctypes.c_char_p),
    )


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise ContainmentError(f"{what}: {os.strerror(errno)}")
    return result


def landlock_abi() -> int:
    """The running kernel's Landlock ABI; 0 if Landlock is missing or disabled."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(
        ctypes.c_long(_SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1)
    )
    return int(result) if result > 0 else 0


def seccomp_available() -> bool:
    """Whether this kernel has seccomp filters (``/proc/self/status`` Seccomp field)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return any(line.startswith("Seccomp_filters:") for line in status)
    except OSError:
        return False


@dataclass(slots=True)
class Prepared:
    """A built ruleset, ready to be enforced by :func:`apply`."""

    ruleset_fd: int
    abi: int
    arch: int
    filter_code: bytes
    ruleset: Ruleset


def _attr_size(abi: int) -> int:
    if abi >= 6:
        return 24
    if abi >= 4:
        return 16
    return 8


#: The devices a contained program may read besides its terminals (``/dev`` is not
#: readable as a whole: sshd makes a guest's other ptys 0620 and owned by the guest,
#: so another login's keystrokes could be read from them).
READABLE_DEVICES: Final = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def readable_roots(root: str = "/") -> list[tuple[str, bool]]:
    """Every top-level directory of ``root`` except ``dev``, and :data:`READABLE_DEVICES`.

    ``(path, is_directory)``: Landlock refuses directory rights on a file's rule.
    """
    entries = [os.path.join(root, name) for name in sorted(os.listdir(root)) if name != "dev"]
    found = [(path, True) for path in entries if os.path.isdir(path)]
    return found + [(path, False) for path in READABLE_DEVICES if os.path.exists(path)]


def write_paths(write: Sequence[str]) -> list[tuple[str, bool]]:
    """The existing ``write`` paths as ``(path, is_directory)``; refuse any symlink.

    A path that is, or passes through, a symlink could have been planted by an
    earlier contained session of the same guest (``ln -s / W/notes``): the rule
    would then grant writes beneath the link's target.
    """
    found = []
    for path in write:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if os.path.realpath(path) != path:
            raise ContainmentError(f"write path {path} is or passes through a symlink")
        found.append((path, stat.S_ISDIR(info.st_mode)))
    return found


def _open_rule_path(rule: Rule, write: frozenset[str]) -> int:
    """An ``O_PATH`` fd for ``rule``; a write path must still be exactly that path."""
    if rule.path not in write:
        return os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
    fd = os.open(rule.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    if os.readlink(f"/proc/self/fd/{fd}") != rule.path:  # swapped since write_paths()
        os.close(fd)
        raise ContainmentError(f"write path {rule.path} changed while being contained")
    return fd


def prepare(binary: str, write: Sequence[str], terminals: Sequence[str]) -> Prepared:
    """Build the ruleset in the kernel (not yet enforced); raise :class:`ContainmentError`."""
    arch = machine_arch()
    abi = landlock_abi()
    if abi < MIN_ABI:
        raise ContainmentError("Landlock is not available (kernel 5.13+ with lsm=...,landlock)")
    if not seccomp_available():
        raise ContainmentError("seccomp filters are not available (CONFIG_SECCOMP_FILTER)")
    paths = write_paths(write)
    ruleset = build_ruleset(
        abi,
        executables=executables(binary),
        write=paths,
        terminals=[t for t in terminals if os.path.exists(t)],
        readable=readable_roots(),
    )
    writable = frozenset(path for path, _ in paths)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(ruleset.handled_fs, ruleset.handled_net, ruleset.scoped)
    fd = _check(
        libc.syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            ctypes.byref(attr),
            ctypes.c_size_t(_attr_size(abi)),
            ctypes.c_uint32(0),
        ),
        "landlock_create_ruleset",
    )
    try:
        for rule in ruleset.rules:
            parent = _open_rule_path(rule, writable)
            try:
                beneath = _PathBeneathAttr(rule.access, parent)
                _check(
                    libc.syscall(
                        ctypes.c_long(_SYS_ADD_RULE),
                        ctypes.c_int(fd),
                        ctypes.c_int(_RULE_PATH_BENEATH),
                        ctypes.byref(beneath),
                        ctypes.c_uint32(0),
                    ),
                    f"landlock_add_rule {rule.path}",
                )
            finally:
                os.close(parent)
    except (OSError, ContainmentError) as error:
        os.close(fd)
        raise ContainmentError(str(error)) from None
    return Prepared(fd, abi, arch, seccomp_program(arch, abi), ruleset)


def close_other_fds(keep: int = -1) -> None:
    """Close every descriptor above 2 (except ``keep``): nothing leaks into the program."""
    if keep > 2:
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)
    else:
        os.closerange(3, 1 << 20)


def apply(prepared: Prepared) -> None:
    """Enforce: no new privileges, Landlock, seccomp, rlimits; raise :class:`ContainmentError`."""
    close_other_fds(keep=prepared.ruleset_fd)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    ulong = ctypes.c_ulong
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0)), "no_new_privs")
    _check(
        libc.syscall(
            ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(prepared.ruleset_fd), ctypes.c_uint32(0)
        ),
        "landlock_restrict_self",
    )
    os.close(prepared.ruleset_fd)
    code = prepared.filter_code
    program = _SockFilter(len(code) // 8, code)
    _check(
        libc.prctl(_PR_SET_SECCOMP, ulong(_SECCOMP_MODE_FILTER), ctypes.byref(program), ulong(0)),
        "seccomp",
    )
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def contain(binary: str, write: Sequence[str], terminals: Sequence[str]) -> None:
    """:func:`prepare` then :func:`apply` (tests and tools; the gatekeeper splits them)."""
    apply(prepare(binary, write, terminals))
