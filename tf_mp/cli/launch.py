"""`tf-mp launch`: run a command as several processes that share one mesh.

On one machine, `tf-mp launch --num-processes 2 -- python train.py` starts the
processes with Keras's `KERAS_DISTRIBUTION_*` variables set to free loopback
ports; the script's `tf_mp.initialize()` (or any `tf-mp` command) joins them.
On a cluster, run `tf-mp launch --job-addresses ... --process-id I -- ...` once
on each host. Each output line is prefixed with its process id. If a process
fails, the others are stopped and the launcher exits with the failed process's
status, after printing its last lines.

This module imports no TensorFlow: the launcher only starts processes.
"""

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tf_mp.cli import common

# Environment variables of `keras.distribution.initialize` (and `tf_mp.initialize`).
JOB_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
VIRTUAL_DEVICES = "TF_MP_VIRTUAL_DEVICES"
LAST_LINES = 20


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "launch",
        help="Run a command as several processes that share one mesh.",
        description="Runs COMMAND as several processes joined by "
        "tf_mp.initialize(). TensorFlow's cluster gRPC servers listen on all "
        "network interfaces and have no authentication: keep their ports on a "
        "private network.",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        help="Processes to start on this machine (default 2), or the cluster's "
        "size with --job-addresses.",
    )
    parser.add_argument(
        "--virtual-devices",
        type=int,
        help="Split each process's CPU into N logical devices.",
    )
    parser.add_argument(
        "--job-addresses",
        help="Cluster mode: comma-separated host:port of every process, in "
        "process order; with --process-id, starts that one process here.",
    )
    parser.add_argument(
        "--process-id", type=int, help="Cluster mode: this host's process."
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=10.0,
        help="Seconds the other processes get to exit after one failed, before "
        "they are killed (default 10).",
    )
    parser.add_argument(
        "launch_command",
        metavar="COMMAND",
        nargs="+",
        help="The command each process runs, after `--` (e.g. -- python train.py).",
    )
    parser.set_defaults(run=run)


def run(args):
    for flag in ("num_processes", "virtual_devices"):
        value = getattr(args, flag)
        if value is not None:
            common.positive(f"--{flag.replace('_', '-')}", value)
    if not args.grace_period >= 0:
        raise common.UsageError(
            f"--grace-period must be >= 0. Received: --grace-period {args.grace_period}"
        )
    environments = _environments(args)
    status = Launcher(args.launch_command, environments, args.grace_period).run()
    if status:
        raise SystemExit(status)
    return 0


def _environments(args):
    """One environment per process to start here."""
    shared = {}
    if args.virtual_devices is not None:
        shared[VIRTUAL_DEVICES] = str(args.virtual_devices)
    if args.job_addresses is None:
        if args.process_id is not None:
            raise common.UsageError(
                "--process-id needs --job-addresses (the addresses of every "
                f"process). Received: --process-id {args.process_id}"
            )
        count = args.num_processes or 2
        addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(count))
        ids = range(count)
    else:
        addresses = args.job_addresses
        count = len(addresses.split(","))
        if args.num_processes is not None and args.num_processes != count:
            raise common.UsageError(
                f"--job-addresses lists {count} process(es) but --num-processes is "
                f"{args.num_processes}. Received: --job-addresses {addresses}"
            )
        if args.process_id is None or not 0 <= args.process_id < count:
            raise common.UsageError(
                f"--process-id must be in [0, {count}) with --job-addresses "
                f"(each host starts its own process). Received: --process-id "
                f"{args.process_id}"
            )
        ids = [args.process_id]
    return {
        index: {
            **shared,
            JOB_ADDRESSES: addresses,
            NUM_PROCESSES: str(count),
            PROCESS_ID: str(index),
        }
        for index in ids
    }


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while
    chosen; another program could still take one before TensorFlow binds it)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Launcher:
    """Runs `command` once per environment, relays output, stops all on a failure."""

    def __init__(self, command, environments, grace_period):
        self.command = command
        self.environments = environments
        self.grace_period = grace_period
        self.processes = {}
        self.last_lines = {}
        self.print_lock = threading.Lock()

    def run(self):
        previous = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        readers = []
        try:
            for index, extra in self.environments.items():
                readers.append(self._start(index, extra))
            failed = self._wait()
        finally:
            self._stop_all()
            for thread in readers:
                thread.join(timeout=5)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed is None:
            return 0
        index, status = failed
        lines = "".join(f"  {line}" for line in self.last_lines[index])
        others = len(self.processes) - 1
        print(
            f"tf-mp launch: process {index} failed ({_describe(status)}); "
            f"stopped the other {others} process(es). Its last lines:\n{lines}",
            file=sys.stderr,
            flush=True,
        )
        return status if 0 < status < 256 else 1

    def _start(self, index, extra):
        env = {**os.environ, **extra, "PYTHONUNBUFFERED": "1"}
        try:
            process = subprocess.Popen(
                self.command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Its own process group, stopped as one.
                text=True,
                errors="replace",
            )
        except OSError as error:
            raise common.UsageError(
                f"cannot run {self.command[0]!r}: {error.strerror}"
            ) from None
        self.processes[index] = process
        self.last_lines[index] = collections.deque(maxlen=LAST_LINES)
        thread = threading.Thread(
            target=self._relay, args=(index, process), daemon=True
        )
        thread.start()
        return thread

    def _relay(self, index, process):
        prefix = f"[{index}] " if len(self.environments) > 1 else ""
        for line in process.stdout:
            self.last_lines[index].append(line)
            with self.print_lock:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    def _wait(self):
        """The first `(index, status)` to fail, or `None` when all succeeded."""
        while True:
            running = False
            for index, process in self.processes.items():
                status = process.poll()
                if status is None:
                    running = True
                elif status != 0:
                    return index, status
            if not running:
                return None
            time.sleep(0.1)

    def _stop_all(self):
        alive = [p for p in self.processes.values() if p.poll() is None]
        for process in alive:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_period
        for process in alive:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)  # Leftover children, if any.

    def _on_signal(self, signum, frame):
        raise SystemExit(128 + signum)


def _signal_group(process, sig):
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(status):
    if status < 0:
        return f"killed by {signal.Signals(-status).name}"
    return f"exit status {status}"
