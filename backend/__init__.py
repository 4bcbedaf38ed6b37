"""The generator backend: music features, the networks' pipeline, the service and the CLI.

Nothing here imports bpy; the Blender extension talks to this package through a process.
"""
