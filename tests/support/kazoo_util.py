"""Helpers for tests that use kazoo."""

import threading

from kazoo.protocol.states import Callback

from waiting import wait_until


class EventRecorder:
    """A kazoo watcher that records every WatchedEvent it is called with."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def __call__(self, event):
        with self._lock:
            self.events.append(event)

    def snapshot(self):
        with self._lock:
            return list(self.events)

    def wait_count(self, n, timeout=10.0):
        wait_until(lambda: len(self.snapshot()) >= n, timeout, message="%d watch event(s)" % n)
        return self.snapshot()

    def kinds(self):
        return [(e.type, e.path) for e in self.snapshot()]


def flush_watch_callbacks(client, timeout=10.0):
    """Wait until every watch callback the client has queued so far has run.

    kazoo's reader thread hands watch events to one worker thread in arrival
    order; a marker put on the same queue runs after all of them. So once a
    synchronous read has returned, flushing shows every event that reached the
    client before that read's reply.
    """
    done = threading.Event()
    client.handler.dispatch_callback(Callback("watch", done.set, ()))
    if not done.wait(timeout):
        raise AssertionError("kazoo watch callback queue did not drain within %.0f s" % timeout)
