"""A real RTSP server on loopback that serves one H.264 mp4 file, for the stream tests.

Run it with the system interpreter, which has GStreamer's Python bindings (the project venv
does not):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /clip --file clip.mp4 [--loop]

It serves rtsp://127.0.0.1:PORT/PATH, listening on 127.0.0.1 only, with RTP over TCP
(interleaved) and over UDP both allowed. Every client gets its own pipeline, so each one sees
the clip from its first frame. The H.264 is sent as it is in the file (no re-encoding), paced in
real time by the server's clock: a 9 s clip takes 9 s to play, like a camera. With --loop the
clip repeats without end; the timestamps keep rising across the loop, as a camera's would.
Without --loop the stream ends after one pass.

When the server listens it prints one line, "READY rtsp://127.0.0.1:PORT/PATH", to stdout.
SIGTERM and SIGINT stop it with exit status 0.

How the frames flow: a private reader pipeline per client (filesrc ! qtdemux ! h264parse !
appsink, not synchronised, so it only reads ahead a few frames) hands the encoded frames to the
client's RTSP pipeline (appsrc ! rtph264pay), whose network sinks wait for each frame's time.
On the end of the file the reader seeks back to the start and the timestamps continue from the
end of the previous pass; the RTSP pipeline never sees a seek, a flush or an end of stream.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402

HOST = "127.0.0.1"
# How long the RTSP pipeline waits for the reader to hand over the next frame.
PULL_TIMEOUT = 5 * Gst.SECOND


def _quote(path: str) -> str:
    """``path`` as a quoted gst-launch property value."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ClipFeeder:
    """Feeds one client's ``appsrc`` with the clip's encoded frames, looping if asked."""

    def __init__(self, appsrc: GstApp.AppSrc, file: str, loop: bool) -> None:
        self.appsrc = appsrc
        self.loop = loop
        self.reader = Gst.parse_launch(
            f"filesrc location={_quote(file)} ! qtdemux name=demux demux.video_0 ! "
            "h264parse ! video/x-h264,stream-format=avc,alignment=au ! "
            "appsink name=sink sync=false max-buffers=8 drop=false enable-last-sample=false"
        )
        self.sink: GstApp.AppSink = self.reader.get_by_name("sink")
        self.lock = threading.Lock()
        self.base: int | None = None  # the first frame's decoding time in the file
        self.offset = 0  # the length of the passes before this one
        # The span of the frames' presentation times in the file (the length of one pass).
        self.start: int | None = None
        self.end = 0
        self.closed = False
        self.finished = False
        appsrc.set_property("format", Gst.Format.TIME)
        appsrc.set_property("is-live", False)
        appsrc.set_property("max-bytes", 0)
        self.handler = appsrc.connect("need-data", self._need_data)
        if self.reader.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError(f"cannot read {file}")

    def close(self) -> None:
        """Stop the reader and break the appsrc <-> feeder cycle (else both leak, with the
        reader's file and sockets, once per client)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.reader.set_state(Gst.State.NULL)
            self.appsrc.disconnect(self.handler)
            del self.appsrc, self.sink, self.reader

    def _pull(self) -> Gst.Sample | None:
        """The next frame of the file, going back to the start at its end when looping."""
        sample = self.sink.try_pull_sample(PULL_TIMEOUT)
        if sample is not None or not self.loop or not self.sink.is_eos():
            return sample
        if self.start is None or self.end <= self.start:
            return None  # no timestamped frames: nothing to loop
        self.offset += self.end - self.start
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        if not self.reader.seek_simple(Gst.Format.TIME, flags, 0):
            print("rtsp_server: seeking back to the start failed", file=sys.stderr, flush=True)
            return None
        return self.sink.try_pull_sample(PULL_TIMEOUT)

    def _need_data(self, appsrc: GstApp.AppSrc, _length: int) -> None:
        with self.lock:
            if self.closed or self.finished:
                return
            sample = self._pull()
            if sample is None:
                self.finished = True
                appsrc.end_of_stream()
                return
            caps = sample.get_caps()
            if appsrc.get_caps() is None or not appsrc.get_caps().is_equal(caps):
                appsrc.set_caps(caps)
            buffer = sample.get_buffer().copy()
            pts, dts = buffer.pts, buffer.dts
            stamp = pts if pts != Gst.CLOCK_TIME_NONE else dts
            if stamp != Gst.CLOCK_TIME_NONE:
                length = buffer.duration if buffer.duration != Gst.CLOCK_TIME_NONE else 0
                self.start = stamp if self.start is None else min(self.start, stamp)
                self.end = max(self.end, stamp + length)
                if self.base is None:
                    self.base = dts if dts != Gst.CLOCK_TIME_NONE else pts
            # The output starts at 0 and each pass starts where the one before it ended.
            shift = self.offset - (self.base or 0)
            if pts != Gst.CLOCK_TIME_NONE:
                buffer.pts = max(0, pts + shift)
            if dts != Gst.CLOCK_TIME_NONE:
                buffer.dts = max(0, dts + shift)
            appsrc.push_buffer(buffer)


class ClipFactory(GstRtspServer.RTSPMediaFactory):
    """One pipeline per client (not shared), each with its own reader of the file."""

    def __init__(self, file: str, loop: bool) -> None:
        super().__init__()
        self.file = file
        self.loop = loop
        self.set_shared(False)
        self.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        self.set_launch(
            # config-interval=-1: SPS and PPS before every keyframe, so any frame can start.
            "( appsrc name=src ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.connect("media-configure", self._configure)

    def _configure(self, _factory: ClipFactory, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = ClipFeeder(appsrc, self.file, self.loop)
        media.connect("unprepared", lambda _media: feeder.close())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/clip")
    parser.add_argument("--file", required=True)
    parser.add_argument("--loop", action="store_true", help="repeat the clip without end")
    args = parser.parse_args(argv)
    file = Path(args.file)
    if not file.is_file():
        parser.error(f"no such file: {file}")
    path = args.path if args.path.startswith("/") else "/" + args.path

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(HOST)
    server.set_service(str(args.port))
    # The UDP ports for RTP and RTCP: loopback only, like the listening socket.
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range(HOST, HOST, 30000, 60000, 0)
    factory = ClipFactory(str(file.resolve()), args.loop)
    factory.set_address_pool(pool)
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on {HOST}:{args.port}", file=sys.stderr, flush=True)
        return 1

    main_loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, main_loop.quit)
    print(f"READY rtsp://{HOST}:{server.get_bound_port()}{path}", flush=True)
    main_loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
