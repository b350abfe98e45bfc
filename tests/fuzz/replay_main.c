/*
 * replay_main.c - runs a libFuzzer target over a corpus without libFuzzer.
 *
 * Linked with one fuzz_<name>.c, it reads every file of the corpus
 * directories given as arguments (default: FUZZ_CORPUS_DIR, set by the
 * build) and passes each to LLVMFuzzerTestOneInput() once, so `make check`
 * proves the seeds still run clean under the sanitizers.  An empty corpus
 * is a failure: a replay that replays nothing would pass silently forever.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_CORPUS_DIR
#define FUZZ_CORPUS_DIR "corpus"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns 0 and fills *data (caller frees) with the file's bytes. */
static int replay_read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *file = fopen(path, "rb");
    uint8_t *buffer = NULL;
    size_t used = 0, capacity = 0;
    if (file == NULL)
        return -1;
    for (;;) {
        if (used == capacity) {
            capacity = capacity ? capacity * 2 : 4096;
            uint8_t *grown = realloc(buffer, capacity);
            if (grown == NULL)
                goto fail;
            buffer = grown;
        }
        size_t got = fread(buffer + used, 1, capacity - used, file);
        used += got;
        if (got == 0)
            break;
    }
    if (ferror(file))
        goto fail;
    fclose(file);
    *data = buffer;
    *size = used;
    return 0;
fail:
    free(buffer);
    fclose(file);
    return -1;
}

static int replay_one(const char *path, size_t *replayed)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (replay_read_file(path, &data, &size) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    /* A copy of exactly `size` bytes, so ASan catches any read past the end. */
    uint8_t *exact = malloc(size ? size : 1);
    if (exact == NULL) {
        free(data);
        return -1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    (*replayed)++;
    return 0;
}

static int replay_directory(const char *directory, size_t *replayed)
{
    struct dirent **entries = NULL;
    int count = scandir(directory, &entries, NULL, alphasort);
    int rc = 0;
    if (count < 0) {
        fprintf(stderr, "replay: cannot read %s\n", directory);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", directory, entries[i]->d_name);
        if (entries[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            replay_one(path, replayed) != 0)
            rc = -1;
        free(entries[i]);
    }
    free(entries);
    return rc;
}

int main(int argc, char **argv)
{
    const char *default_dirs[] = {FUZZ_CORPUS_DIR};
    const char *const *dirs = argc > 1 ? (const char *const *)argv + 1 : default_dirs;
    int dir_count = argc > 1 ? argc - 1 : 1;
    size_t replayed = 0;
    int rc = 0;
    for (int i = 0; i < dir_count; i++)
        if (replay_directory(dirs[i], &replayed) != 0)
            rc = 1;
    if (replayed == 0) {
        fprintf(stderr, "replay: no corpus files found\n");
        return 1;
    }
    printf("replay: %zu inputs ran clean\n", replayed);
    return rc;
}
