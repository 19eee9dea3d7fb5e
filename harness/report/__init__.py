"""Reports: Markdown for the terminal and the README (and, later, HTML with charts)."""
