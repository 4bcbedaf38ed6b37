"""The song to dance to: a sound strip of the scene (or a file), its file on disk and its frames.

Blender 5.0 renamed ``sequence_editor.sequences`` to ``strips`` (4.5 has both; 4.2-4.4
only the old names), so every lookup goes through ``all_strips``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import bpy


class AudioError(Exception):
    """The song cannot be used (one line for the user)."""


@dataclass(frozen=True)
class AudioSpan:
    """What to dance to and where its keys go.

    path: the sound file; start_s, end_s: the span of it to dance to, seconds (end_s None:
    to the end of the file); first_frame: the scene frame of start_s; num_frames: how many
    frames to key, first_frame .. first_frame + num_frames - 1 (None: as many as the dance
    has); fps: the scene's frame rate; strip: the sound strip's name, or None for a file
    that goes on the timeline once the dance is keyed; temporary: path is our copy of a
    packed sound, deleted after the job.
    """

    path: str
    start_s: float
    end_s: float | None
    first_frame: int
    num_frames: int | None
    fps: float
    strip: str | None
    temporary: bool = False


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


def all_strips_name(editor: bpy.types.SequenceEditor) -> str:
    """The editor's collection of every strip (meta strips' contents too): 5.0's name or the old one."""
    return "strips_all" if hasattr(editor, "strips_all") else "sequences_all"


def all_strips(scene: bpy.types.Scene) -> list[bpy.types.Strip]:
    editor = scene.sequence_editor
    return [] if editor is None else list(getattr(editor, all_strips_name(editor)))


def sound_strips(scene: bpy.types.Scene) -> list[bpy.types.Strip]:
    return [strip for strip in all_strips(scene) if strip.type == "SOUND"]


def active_sound_strip(scene: bpy.types.Scene) -> bpy.types.Strip | None:
    """The active strip if it is a sound; else the only sound strip, if there is just one."""
    editor = scene.sequence_editor
    active = editor.active_strip if editor is not None else None
    if active is not None and active.type == "SOUND":
        return active
    sounds = sound_strips(scene)
    return sounds[0] if len(sounds) == 1 else None


def find_sound_strip(scene: bpy.types.Scene, name: str) -> bpy.types.Strip:
    for strip in sound_strips(scene):
        if strip.name == name:
            return strip
    raise AudioError(f"the scene has no sound strip named '{name}'")


def sound_file(sound: bpy.types.Sound, scratch_dir: str) -> tuple[str, bool]:
    """A path on disk holding ``sound``'s audio, and whether it is a temporary copy (packed sounds)."""
    if sound.packed_file is not None:
        extension = os.path.splitext(sound.filepath)[1] or ".wav"
        handle, path = tempfile.mkstemp(suffix=extension, dir=scratch_dir)
        with os.fdopen(handle, "wb") as copy:
            copy.write(sound.packed_file.data)
        return path, True
    path = bpy.path.abspath(sound.filepath, library=sound.library)
    if not os.path.isfile(path):
        raise AudioError(f"sound '{sound.name}': the file {path} does not exist")
    return path, False


def strip_frames(strip: bpy.types.Strip) -> tuple[int, int, int]:
    """(where the whole sound would start, first frame that plays, first frame after) of a strip.

    Blender 5.3 names them content_start, left_handle and right_handle; the older names
    (frame_start, frame_final_start/end) are deprecated there and go in 6.0.
    """
    if hasattr(strip, "left_handle"):
        return int(strip.content_start), int(strip.left_handle), int(strip.right_handle)
    return int(strip.frame_start), int(strip.frame_final_start), int(strip.frame_final_end)


def set_strip_handles(strip: bpy.types.Strip, first: int, end: int) -> None:
    """Trim a strip to play frames first..end-1 (the handles, not the sound's start)."""
    if hasattr(strip, "left_handle"):
        strip.left_handle, strip.right_handle = first, end
    else:
        strip.frame_final_start, strip.frame_final_end = first, end


def strip_span(
    scene: bpy.types.Scene, strip: bpy.types.Strip, scratch_dir: str, frame_range: tuple[int, int] | None = None
) -> AudioSpan:
    """The part of ``strip`` that plays (or of ``frame_range``, inclusive, within it) as an AudioSpan."""
    if strip.sound is None:
        raise AudioError(f"sound strip '{strip.name}' has no sound")
    fps = scene_fps(scene)
    sound_start, first, end = strip_frames(strip)  # end: first frame after
    if frame_range is not None:
        wanted_first, wanted_last = frame_range
        if wanted_last < wanted_first:
            raise AudioError(f"frame range {wanted_first}-{wanted_last} is empty")
        if wanted_first >= end or wanted_last < first:
            raise AudioError(
                f"frame range {wanted_first}-{wanted_last} is outside strip '{strip.name}' (frames {first}-{end - 1})"
            )
        first, end = max(first, wanted_first), min(end, wanted_last + 1)
    path, temporary = sound_file(strip.sound, scratch_dir)
    # A strip plays its sound from its content start on (trimming moves the left handle only).
    start_s = (first - sound_start) / fps
    num_frames = end - first
    return AudioSpan(
        path=path,
        start_s=max(0.0, start_s),
        end_s=start_s + num_frames / fps,
        first_frame=first,
        num_frames=num_frames,
        fps=fps,
        strip=strip.name,
        temporary=temporary,
    )


def file_span(scene: bpy.types.Scene, path: str, frame_range: tuple[int, int] | None) -> AudioSpan:
    """A sound file not on the timeline: from its start, at the range's first frame (or the scene's)."""
    path = bpy.path.abspath(path)
    if not path:
        raise AudioError("no sound file is chosen")
    if not os.path.isfile(path):
        raise AudioError(f"sound file {path} does not exist")
    fps = scene_fps(scene)
    if frame_range is None:
        return AudioSpan(path, 0.0, None, scene.frame_start, None, fps, None)
    first, last = frame_range
    if last < first:
        raise AudioError(f"frame range {first}-{last} is empty")
    return AudioSpan(path, 0.0, (last - first + 1) / fps, first, last - first + 1, fps, None)


def add_sound_strip(scene: bpy.types.Scene, path: str, first_frame: int) -> bpy.types.Strip:
    """Put the song on the timeline at ``first_frame``, in the first free channel."""
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    editor = scene.sequence_editor
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    used = {strip.channel for strip in all_strips(scene)}
    channel = next(channel for channel in range(1, 129) if channel not in used)
    return strips.new_sound(os.path.basename(path), path, channel, first_frame)
