"""What leaves the job: top-N lists, the published tables, the serving file, and the pages people read."""
