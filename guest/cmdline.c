#include "cmdline.h"
#include "lib.h"
#include "print.h"

#define MB_BOOT_MAGIC   0x2badb002
#define MB_INFO_CMDLINE (1u << 2)
#define CMDLINE_MAX     512
#define VALUE_MAX       64

struct mb_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

static char line[CMDLINE_MAX];

void cmdline_init(uint32_t mb_magic, uint32_t mb_info)
{
    const struct mb_info *mbi = (const struct mb_info *)mb_info;
    const char *src;
    unsigned i;

    if (mb_magic != MB_BOOT_MAGIC || !(mbi->flags & MB_INFO_CMDLINE)) {
        kprintf("INFO no multiboot command line\n");
        return;
    }
    src = (const char *)mbi->cmdline;
    for (i = 0; i < CMDLINE_MAX - 1 && src[i]; i++) {
        line[i] = src[i];
    }
    line[i] = 0;
}

/* Find "key=" at the start of a word; returns the value's start. */
static const char *find(const char *key)
{
    size_t klen = strlen(key);
    const char *p = line;

    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (!memcmp(p, key, klen) && p[klen] == '=') {
            return p + klen + 1;
        }
        while (*p && *p != ' ') {
            p++;
        }
    }
    return 0;
}

/* One buffer per key lookup is enough: values are read once at start. */
const char *cmdline_str(const char *key, const char *def)
{
    static char vals[4][VALUE_MAX];
    static unsigned next;
    const char *v = find(key);
    char *out;
    unsigned i;

    if (!v) {
        return def;
    }
    out = vals[next++ % 4];
    for (i = 0; i < VALUE_MAX - 1 && v[i] && v[i] != ' '; i++) {
        out[i] = v[i];
    }
    out[i] = 0;
    return out;
}

uint32_t cmdline_u32(const char *key, uint32_t def)
{
    const char *v = cmdline_str(key, 0);
    uint32_t n;

    if (!v || !parse_u32(v, &n)) {
        return def;
    }
    return n;
}
