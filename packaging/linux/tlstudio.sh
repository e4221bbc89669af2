#!/bin/sh
# /usr/bin/tlstudio: the packaged app lives in /opt/tlstudio (installed by the .deb).
exec /opt/tlstudio/tlstudio "$@"
