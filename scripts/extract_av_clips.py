"""Extracts frames and 16 kHz audio per clip from AVE / Kinetics-Sounds videos.

Needs ``ffmpeg`` on PATH. Writes the layout
``ume_jax/data/datasets/video_clips.py`` reads (set
``--config.data.manual_dir`` to OUT)::

  OUT/<list files, copied>          AVE: Annotations.txt, trainSet.txt,
                                    valSet.txt, testSet.txt;
                                    Kinetics-Sounds: my_train.txt, my_test.txt
  OUT/frames/{clip_id}/00.jpg ...   --frames frames spread uniformly over the
                                    segment, short side --short-side px
  OUT/audio/{clip_id}.wav           16 kHz mono 16-bit PCM

Segments and inputs per dataset:

* ave: one clip per annotated event (a video may hold several);
  clip_id = ``{VideoID}_{Start}_{End}``, the segment [Start, End] s of
  ``VIDEOS/{VideoID}.mp4`` (AVE.zip's files).
* kinetics_sounds: clip_id = the list's first field, ``{ytid}_{start}`` (OGM-GE)
  or ``{ytid}_{start}_{end}``; YouTube ids are 11 characters, the rest are
  seconds, and the list's second field is the duration. The video is the
  first of ``VIDEOS/{clip_id}.mp4`` (already trimmed), ``VIDEOS/{ytid}_{start
  :06d}_{end:06d}.mp4`` (the Kinetics downloaders' trimmed name) or
  ``VIDEOS/{ytid}.mp4`` (full video: the segment is cut here).

Clips whose video is missing or fails are reported and skipped (the loader
skips them too, up to data.max_missing_fraction). Existing outputs are kept,
so an interrupted run resumes.

  python scripts/extract_av_clips.py --dataset=ave --videos=AVE_Dataset/AVE \
      --lists=AVE_Dataset --out=/data/ave_clips
"""
import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys

LISTS = {"ave": ["Annotations.txt", "trainSet.txt", "valSet.txt",
                 "testSet.txt"],
         "kinetics_sounds": ["my_train.txt", "my_test.txt"]}


def ave_segments(lists: pathlib.Path, videos: pathlib.Path):
  """-> {clip_id: (video path, start s, end s)} from Annotations.txt."""
  out = {}
  for line in (lists / "Annotations.txt").read_text().splitlines():
    parts = line.strip().split("&")
    if len(parts) != 5 or line.startswith("Category&"):
      continue
    vid, start, end = parts[1], int(float(parts[3])), int(float(parts[4]))
    out[f"{vid}_{start}_{end}"] = (videos / f"{vid}.mp4", start, end)
  return out


def ks_segments(lists: pathlib.Path, videos: pathlib.Path):
  out = {}
  for name in LISTS["kinetics_sounds"]:
    for line in (lists / name).read_text().splitlines():
      parts = line.strip().split(",")
      if len(parts) != 3:
        continue
      clip_id, duration = parts[0], float(parts[1])
      ytid, times = clip_id[:11], clip_id[12:].split("_")
      start = float(times[0])
      end = float(times[1]) if len(times) > 1 else start + duration
      trimmed = [videos / f"{clip_id}.mp4",
                 videos / f"{ytid}_{int(start):06d}_{int(end):06d}.mp4"]
      hit = next((p for p in trimmed if p.is_file()), None)
      out[clip_id] = ((hit, 0.0, end - start) if hit
                      else (videos / f"{ytid}.mp4", start, end))
  return out


def _ffmpeg(*args):
  subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args],
                 check=True, capture_output=True, text=True)


def extract(clip_id, video, start, end, out: pathlib.Path, frames: int,
            short_side: int) -> str | None:
  """Extracts one clip; returns an error line or None."""
  if not video.is_file():
    return f"{clip_id}: no video {video}"
  fdir, wav = out / "frames" / clip_id, out / "audio" / f"{clip_id}.wav"
  duration = max(end - start, 0.1)
  seek = ["-ss", f"{start:.3f}", "-t", f"{duration:.3f}", "-i", str(video)]
  try:
    if len(list(fdir.glob("*.jpg"))) < frames:
      fdir.mkdir(parents=True, exist_ok=True)
      # fps = frames / duration spreads `frames` frames over the segment.
      scale = (f"scale='if(lt(iw,ih),{short_side},-2)'"
               f":'if(lt(iw,ih),-2,{short_side})'")
      _ffmpeg(*seek, "-vf", f"fps={frames / duration:.6f},{scale}",
              "-frames:v", str(frames), "-start_number", "0", "-q:v", "3",
              str(fdir / "%02d.jpg"))
    if not wav.is_file():
      wav.parent.mkdir(parents=True, exist_ok=True)
      # Written under a temporary name, so an interrupted run leaves no
      # truncated wav that a resumed run would keep.
      part = wav.with_suffix(".part.wav")
      _ffmpeg(*seek, "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
              str(part))
      part.replace(wav)
  except subprocess.CalledProcessError as e:
    return f"{clip_id}: ffmpeg failed: {e.stderr.strip()[-300:]}"
  return None


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dataset", choices=sorted(LISTS), required=True)
  p.add_argument("--videos", type=pathlib.Path, required=True,
                 help="folder of the downloaded .mp4 videos")
  p.add_argument("--lists", type=pathlib.Path, required=True,
                 help="folder holding the annotation/split list files")
  p.add_argument("--out", type=pathlib.Path, required=True)
  p.add_argument("--frames", type=int, default=10,
                 help="frames per clip (1 fps for 10 s clips)")
  p.add_argument("--short-side", type=int, default=256)
  p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
  args = p.parse_args(argv)
  if shutil.which("ffmpeg") is None:
    sys.exit("extract_av_clips: ffmpeg is not on PATH; install it (e.g. `apt"
             " install ffmpeg` or a static build from ffmpeg.org) and rerun.")
  missing = [n for n in LISTS[args.dataset] if not (args.lists / n).is_file()]
  if missing:
    sys.exit(f"extract_av_clips: {args.lists} lacks {missing}.")
  args.out.mkdir(parents=True, exist_ok=True)
  for n in LISTS[args.dataset]:
    shutil.copyfile(args.lists / n, args.out / n)
  segments = (ave_segments if args.dataset == "ave" else ks_segments)(
      args.lists, args.videos)
  failed = 0
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    jobs = [pool.submit(extract, cid, v, s, e, args.out, args.frames,
                        args.short_side)
            for cid, (v, s, e) in sorted(segments.items())]
    for i, job in enumerate(concurrent.futures.as_completed(jobs), 1):
      err = job.result()
      if err:
        failed += 1
        print(err, file=sys.stderr)
      if i % 200 == 0 or i == len(jobs):
        print(f"{i}/{len(jobs)} clips, {failed} failed", flush=True)
  print(f"Done: {len(jobs) - failed} clips in {args.out}; use"
        f" --config.data.manual_dir={args.out}")
  # The loader refuses more than data.max_missing_fraction (default 5%)
  # missing clips: fail here too, so scripts notice.
  if failed > 0.05 * len(jobs):
    sys.exit(f"extract_av_clips: {failed} of {len(jobs)} clips failed (see"
             " above); fix and rerun (finished clips are kept).")


if __name__ == "__main__":
  main()
