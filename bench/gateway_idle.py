"""bench/gateway_idle.py - holds many idle HTTP/2 client connections open to one server.

    python3 bench/gateway_idle.py HOST PORT COUNT

Opens COUNT TCP connections; on each sends the HTTP/2 client preface and an empty SETTINGS
frame (what every client sends first), then reads until the server's first frame header has
arrived on every connection (its SETTINGS, which is then acknowledged), so the server has
accepted and set up each one before anything is measured.  Prints "ready OPENED" on stdout and waits for a line (or EOF) on stdin; then checks
which connections the server has closed meanwhile (EOF or reset after reading what is pending),
prints "open N closed M" and exits, closing them all.

Connections the server refuses or closes during set-up are counted, not fatal: how a server
behaves at 10,000 connections is what the bench wants to know.  Standard library only.
"""
import resource
import select
import socket
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
FRAME_HEADER = 9


def raise_fd_limit(count):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def connect_all(host, port, count):
    """Returns the connected sockets (fewer than count if the server refused some)."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect((host, port))
            sock.sendall(PREFACE + EMPTY_SETTINGS)
        except OSError as error:
            print(f"gateway_idle: connection {len(socks) + 1}: {error}", file=sys.stderr)
            sock.close()
            break
        socks.append(sock)
    return socks


def await_first_frames(socks, timeout=60.0):
    """Blocks until every socket has received a frame header (or EOF); returns the live ones."""
    pending = {sock.fileno(): [sock, 0] for sock in socks}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN)
    live = []
    while pending:
        events = poller.poll(timeout * 1000)
        if not events:
            break
        for fd, _ in events:
            sock, got = pending[fd]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data or got + len(data) >= FRAME_HEADER:
                poller.unregister(fd)
                del pending[fd]
                if data:
                    # the server's first frame is its SETTINGS: acknowledge it, as every
                    # client does (nghttpx closes connections that don't, after 10 s)
                    try:
                        sock.sendall(SETTINGS_ACK)
                        live.append(sock)
                    except OSError:
                        pass
            else:
                pending[fd][1] = got + len(data)
    return live


def still_open(sock):
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    raise_fd_limit(count)
    socks = connect_all(host, port, count)
    live = await_first_frames(socks)
    print(f"ready {len(live)}", flush=True)
    sys.stdin.readline()
    opened = sum(1 for sock in live if still_open(sock))
    print(f"open {opened} closed {len(socks) - opened}", flush=True)
    for sock in socks:
        sock.close()


if __name__ == "__main__":
    main()
