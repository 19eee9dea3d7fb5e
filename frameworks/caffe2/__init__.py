"""Caffe2 (torch 1.8.1's caffe2 package): see adapter.py."""
