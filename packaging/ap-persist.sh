#!/bin/sh
# ap-persist, as the .deb and the .rpm install it (/usr/sbin/ap-persist): the
# bundled tool run by the distribution's node, by absolute paths, whatever
# node comes first on the caller's PATH. The rules, units and the mdevctl
# callout that `ap-persist install` writes name the same two paths.
exec /usr/bin/node /usr/lib/ap-persist/dist/bin/ap-persist.cjs "$@"
