/**
 * The payload pump's program, run as `python3 -c PUMP_PY <zeroRuns 0|1> <prefixBytes> <buffers 0|1>`
 * (docs/bundle.md 8.1, decision 0016). Python 3.8+, standard library only: it is present wherever borg
 * is, and hashlib is OpenSSL's SHA-256 (SHA-NI where the CPU has it).
 *
 * fd 4: the producer's output, fd 5: the bundle's sink (the transport's stdin). Both are node's own
 * sockets, shared: O_NONBLOCK is set on their open file descriptions and stays so (the pump waits with
 * select on EAGAIN). Not fds 0 and 1: libuv makes a child's fds 0-2 blocking, which would change the
 * flags of node's own sockets too. fd 3: a socket to node: first the `prefixBytes` node had already
 * read from the producer, then JSON report lines from the pump. Its stdin and stdout are /dev/null.
 */
export const PUMP_PY = String.raw`
import hashlib, json, os, resource, select, signal, socket, stat, struct, sys, time

WINDOW = 64 * 1024        # zero runs: 64 KiB windows aligned to the part's first byte
MAX_D = 1024 * 1024       # largest D payload written (the format allows 4 MiB)
ZEROS = bytes(WINDOW)
TICK = 0.25               # progress report interval, and the longest wait between checks of SIGTERM
SRC, SINK, CTL = 4, 5, 3

zero_runs = sys.argv[1] == "1"
prefix_left = int(sys.argv[2])
if sys.argv[3] == "1":
    # Bigger kernel buffers: a pipe to 1 MiB (F_SETPIPE_SZ), a socket's send/receive buffer; failures are fine.
    for fd, opt in ((SRC, socket.SO_RCVBUF), (SINK, socket.SO_SNDBUF)):
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode):
                import fcntl
                fcntl.fcntl(fd, 1031, 1 << 20)
            elif stat.S_ISSOCK(mode):
                s = socket.socket(fileno=os.dup(fd))
                s.setsockopt(socket.SOL_SOCKET, opt, 1 << 20)
                s.close()
        except OSError:
            pass

stopping = False
def on_term(signum, frame):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, on_term)

part_hash = hashlib.sha256()
payload = 0     # payload bytes read (and hashed)
wire = 0        # bytes written to the sink: D and Z records
blocked = False # waiting for the sink to take bytes
last_report = 0.0

def report(line):
    data = (json.dumps(line) + "\n").encode()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(CTL, view):]
        except BlockingIOError:
            select.select([], [CTL], [])

def progress(force=False):
    global last_report
    now = time.monotonic()
    if force or now - last_report >= TICK:
        last_report = now
        report({"bytes": payload, "wireBytes": wire, "blocked": blocked})

class SinkGone(Exception):
    pass

class Stopped(Exception):
    pass

def write_all(data):
    """Writes all of data to the sink, waiting (and reporting progress) while it is full."""
    global wire, blocked
    view = memoryview(data)
    while view:
        try:
            n = os.write(SINK, view)
        except BlockingIOError:
            blocked = True
            select.select([], [SINK], [], TICK)
            progress()
            continue
        except (BrokenPipeError, ConnectionResetError) as error:
            raise SinkGone(error)
        blocked = False
        wire += n
        view = view[n:]

def put_data(view):
    """D records of at most MAX_D bytes; after SIGTERM no new record is begun."""
    for start in range(0, len(view), MAX_D):
        if stopping:
            raise Stopped()
        piece = view[start:start + MAX_D]
        write_all(struct.pack(">BI", 0x44, len(piece)))
        write_all(piece)

def put_zeros(count):
    if stopping:
        raise Stopped()
    write_all(struct.pack(">BIQ", 0x5A, 8, count))

buf = bytearray(MAX_D + WINDOW)
mv = memoryview(buf)
fill = 0          # bytes in buf; buf[0] is always at a window boundary of the payload
zeros_pending = 0 # zero bytes counted (whole windows) and not yet written as Z

def consume(flush):
    """Sends the whole windows of buf, or all of it when flushing; keeps an incomplete window otherwise."""
    global fill, zeros_pending
    usable = fill if flush or not zero_runs else fill - fill % WINDOW
    data_start = 0
    pos = 0
    while zero_runs and pos < usable:
        size = min(WINDOW, usable - pos)
        # startswith compares with memcmp: it stops at the first non-zero byte, so data costs ~nothing.
        if buf.startswith(ZEROS if size == WINDOW else ZEROS[:size], pos):
            if data_start < pos:
                put_data(mv[data_start:pos])
            zeros_pending += size
            data_start = pos + size
        elif zeros_pending:
            if data_start < pos:
                put_data(mv[data_start:pos])
            put_zeros(zeros_pending)
            zeros_pending = 0
            data_start = pos
        pos += size
    if data_start < usable:
        if zeros_pending:
            put_zeros(zeros_pending)
            zeros_pending = 0
        put_data(mv[data_start:usable])
    if flush and zeros_pending:
        put_zeros(zeros_pending)
        zeros_pending = 0
    rest = fill - usable
    buf[0:rest] = buf[usable:fill]
    fill = rest

def read_some():
    """Reads into buf after fill: the prefix from node first, then the producer. 0 at the producer's EOF."""
    global prefix_left
    fd = CTL if prefix_left > 0 else SRC
    room = len(buf) - fill
    if fd == CTL:
        room = min(room, prefix_left)
    while True:
        try:
            n = os.readv(fd, [mv[fill:fill + room]])
        except BlockingIOError:
            ready = select.select([fd], [], [], TICK)[0]
            if stopping:
                return None
            if not ready and fill > 0 and fd == SRC:
                # The producer paused: what is held back goes out now (the windows align anew after it).
                consume(True)
            progress()
            continue
        if fd == CTL:
            if n == 0:
                raise EOFError("node closed the pump's control socket before the prefix")
            prefix_left -= n
        return n

try:
    while not stopping:
        n = read_some()
        if n is None:
            break
        if n == 0:
            consume(True)
            break
        part_hash.update(mv[fill:fill + n])
        payload += n
        fill += n
        consume(False)
        progress()
except Stopped:
    pass  # SIGTERM (the bundle is aborted): the last record written is whole; the rest is dropped with the part
except SinkGone as error:
    report({"error": "sink", "errno": getattr(error.args[0], "errno", None), "message": str(error.args[0]), "wireBytes": wire})
    sys.exit(3)
usage = resource.getrusage(resource.RUSAGE_SELF)
report({"done": True, "stopped": stopping, "bytes": payload, "sha256": part_hash.hexdigest(),
        "wireBytes": wire, "user": usage.ru_utime, "system": usage.ru_stime})
`;
