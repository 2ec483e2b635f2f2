/* mapsize_shim.c - preloaded by valgrind.sh only: valgrind's address space
 * (about 128 GiB on amd64 in 3.19) cannot hold the 1 TiB sparse LMDB map
 * the local store asks for, so mdb_env_open fails with EINVAL under
 * memcheck. This clamps the map to 16 GiB, plenty for the test stores; it
 * changes nothing else. */
#include <dlfcn.h>
#include <errno.h>
#include <lmdb.h>
#include <stddef.h>

#define VALGRIND_MAP_BYTES ((size_t)16 << 30)

int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
    int (*real)(MDB_env *, size_t) = (int (*)(MDB_env *, size_t))dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
    if (real == NULL)
        return EINVAL;
    return real(env, size > VALGRIND_MAP_BYTES ? VALGRIND_MAP_BYTES : size);
}
