/* Data caches: where submit and workers keep data packs by fingerprint.
 *
 * A cache directory DIR holds
 *   DIR/packs/<fingerprint>.tfqd   a pack file (common/datapack.h), written
 *                                  atomically with datapack_write
 *   DIR/sources/<sha256 of a key>  one fingerprint and "\n": which pack a
 *                                  data source decoded to last time
 * The default DIR is $TFQ_CACHE, else $XDG_CACHE_HOME/tfq, else
 * $HOME/.cache/tfq.  A pack's mtime is the time it was last used
 * (datacache_touch), so that datacache_trim removes the least recently
 * used first. */
#ifndef TFQ_COMMON_DATACACHE_H
#define TFQ_COMMON_DATACACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* DIR/packs/<fp>.tfqd into out; TFQ_ERANGE when it does not fit. */
int datacache_pack_path(const char *dir, const char *fp, char *out,
                        size_t bytes);

/* The default cache directory (see above) into out; TFQ_ENOENT when none of
 * TFQ_CACHE, XDG_CACHE_HOME, HOME is set (or set but empty); TFQ_ERANGE
 * when it does not fit. */
int datacache_default_dir(char *out, size_t bytes, tfq_error *e);

/* mkdir -p DIR/packs and DIR/sources.  TFQ_EIO naming the directory that
 * could not be made. */
int datacache_prepare(const char *dir, tfq_error *e);

/* mkdir -p dir (mode 0777 before the umask).  TFQ_ERANGE for a path too
 * long, TFQ_EIO naming the part that could not be made or is not a
 * directory. */
int datacache_mkdir_p(const char *dir, tfq_error *e);

/* Marks the pack of fingerprint fp as used now (its mtime), so that a trim
 * removes it last.  A pack that is not there is no error. */
void datacache_touch(const char *dir, const char *fp);

/* The bytes the packs of DIR take (temporary files of writes in progress
 * included); 0 for a cache that does not exist. */
int64_t datacache_bytes(const char *dir);

/* Removes the least recently used packs of DIR until the packs take at most
 * max_bytes, never the one of fingerprint keep_fp (NULL: none is kept), nor
 * a write in progress.  Gives in *removed (may be NULL) how many it removed.
 * TFQ_ENOSPC when the cache is still over max_bytes after removing every
 * pack it may (the kept pack alone is larger, say), TFQ_EIO when DIR/packs
 * cannot be read. */
int datacache_trim(const char *dir, int64_t max_bytes, const char *keep_fp,
                   int *removed, tfq_error *e);

#endif
