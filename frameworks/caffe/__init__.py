"""Caffe (Debian bullseye's python3-caffe) adapter."""
