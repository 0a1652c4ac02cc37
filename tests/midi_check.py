#!/usr/bin/python3
"""midi_check.py - reads a composer MIDI file back with a real parser (Debian's python3-mido)
and checks it: format 1, one conductor track plus one per stem, drums only on channel 10,
every note-on closed by a note-off, nothing after the end, the length equal to the cue's.
Called by tests/test_composer.c; usable by hand:

    tests/midi_check.py FILE DURATION_S N_STEMS   ->  prints "ok ..." or the problems; exit 0/1
    tests/midi_check.py --onsets FILE             ->  one line per note-on: "STEM SECONDS"
                                                      (STEM: the track name up to ':'), in
                                                      seconds through the file's tempo map
"""
import sys

try:
    import mido
except ImportError:
    print("midi_check: python3-mido is missing (apt-get install -y python3-mido)")
    sys.exit(2)


def check(path, duration, n_stems):
    problems = []
    m = mido.MidiFile(path)
    if m.type != 1:
        problems.append("format %d, expected 1" % m.type)
    if len(m.tracks) != n_stems + 1:
        problems.append("%d tracks, expected %d (conductor + %d stems)" % (len(m.tracks), n_stems + 1, n_stems))
    if abs(m.length - duration) > 0.001:
        problems.append("length %.6f s, expected %.6f s" % (m.length, duration))
    conductor = [msg.type for msg in m.tracks[0]]
    for need in ("set_tempo", "time_signature", "key_signature", "marker"):
        if need not in conductor:
            problems.append("conductor track has no %s" % need)
    ends = set()
    notes = 0
    for i, track in enumerate(m.tracks):
        tick = 0
        sounding = {}
        channels = set()
        drums = track.name.startswith("drums")
        for msg in track:
            tick += msg.time
            if msg.type == "end_of_track":
                ends.add(tick)
            if not hasattr(msg, "channel"):
                continue
            channels.add(msg.channel)
            if msg.type == "note_on" and msg.velocity > 0:
                if (msg.channel, msg.note) in sounding:
                    problems.append("track %d: note %d starts again at tick %d while sounding" % (i, msg.note, tick))
                sounding[(msg.channel, msg.note)] = tick
                notes += 1
            elif msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
                if sounding.pop((msg.channel, msg.note), None) is None:
                    problems.append("track %d: note-off %d at tick %d without a note-on" % (i, msg.note, tick))
        if sounding:
            problems.append("track %d: %d notes never end" % (i, len(sounding)))
        if i > 0 and drums and channels != {9}:
            problems.append("drum track %d uses channels %s, expected only 9 (channel 10)" % (i, sorted(channels)))
        if i > 0 and not drums and 9 in channels:
            problems.append("pitched track %d (%s) uses the drum channel" % (i, track.name))
    if len(ends) != 1:
        problems.append("tracks end at different ticks: %s" % sorted(ends))
    if notes == 0:
        problems.append("no notes")
    return problems, m, notes


def onsets(path):
    m = mido.MidiFile(path)
    tempo = []  # (tick, microseconds per quarter) from the conductor track
    tick = 0
    for msg in m.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            tempo.append((tick, msg.tempo))
    if not tempo or tempo[0][0] != 0:
        tempo.insert(0, (0, 500000))

    def seconds(t):
        s, prev_tick, prev_tempo = 0.0, 0, tempo[0][1]
        for tt, tp in tempo[1:]:
            if tt >= t:
                break
            s += (tt - prev_tick) * prev_tempo / 1e6 / m.ticks_per_beat
            prev_tick, prev_tempo = tt, tp
        return s + (t - prev_tick) * prev_tempo / 1e6 / m.ticks_per_beat

    for track in m.tracks[1:]:
        name = track.name.split(":")[0]
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                print("%s %.6f" % (name, seconds(tick)))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--onsets":
        return onsets(sys.argv[2])
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    path, duration, n_stems = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    problems, m, notes = check(path, duration, n_stems)
    if problems:
        for p in problems:
            print("%s: %s" % (path, p))
        return 1
    print("ok %s: format %d, %d tracks, %d notes, %.6f s" % (path, m.type, len(m.tracks), notes, m.length))
    return 0


if __name__ == "__main__":
    sys.exit(main())
