#!/bin/sh
# shift-owners.sh DIR BASE: adds BASE to the owner and group of everything under DIR, so
# that a machine run with its own user namespace at PrivateUsers=BASE:65536 sees the tree
# as its own without ID-mapped mounts (which /usr's erofs and the test tier's overlayfs
# do not offer). chown clears set-id bits and file capabilities, so the set-id modes are
# put back afterwards; a file with capabilities is refused rather than silently weakened.
set -eu
dir=$1 base=$2
command -v getfattr >/dev/null || { echo "shift-owners: getfattr (attr) is needed to look for file capabilities" >&2; exit 1; }
if [ -n "$(find "$dir" -xdev -type f -exec getfattr --absolute-names -m '^security\.capability$' {} + 2>/dev/null | head -n 1)" ]; then
    echo "shift-owners: $dir has files with capabilities, which a shift would drop" >&2
    exit 1
fi
setid=$(mktemp)
find "$dir" -xdev \( -perm -4000 -o -perm -2000 \) -printf '%m %p\n' > "$setid"
for uid in $(find "$dir" -xdev -printf '%U\n' | sort -un); do
    [ "$uid" -lt 65536 ] || { echo "shift-owners: uid $uid in $dir is already shifted" >&2; exit 1; }
    find "$dir" -xdev -uid "$uid" -exec chown -h "$((uid + base))" {} +
done
for gid in $(find "$dir" -xdev -printf '%G\n' | sort -un); do
    [ "$gid" -lt 65536 ] || { echo "shift-owners: gid $gid in $dir is already shifted" >&2; exit 1; }
    find "$dir" -xdev -gid "$gid" -exec chgrp -h "$((gid + base))" {} +
done
while read -r mode path; do chmod "$mode" "$path"; done < "$setid"
rm -f "$setid"
