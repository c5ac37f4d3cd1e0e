"""Containerised targets: the reference image and running an image as the lab's target."""
