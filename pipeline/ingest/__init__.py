"""Raw files in, validated tables out: find and read every MovieLens layout, check it, load it, build model inputs."""
