/*
 * A C port of the weight-file parsing in TensorRT's samples, used as a test oracle for
 * the .wts files tf2rt writes.
 *
 *   v2 (sampleCharRNN loadWeights): read the count; per record read the name (a word),
 *      the type (decimal), discard up to '(' and take the text up to ')' as the shape;
 *      count = product of its comma-separated numbers (none -> 1); bytes = element size
 *      of the type * count; a record that was not asked for is skipped by seeking
 *      2 + bytes ahead; otherwise skip one byte (the space), read the bytes, skip one
 *      byte (the newline).
 *   v1 (sampleMNISTAPI loadWeights): read the count; per record read the name, the type
 *      (decimal) and the element count (decimal), then that many hexadecimal words:
 *      uint32 for type 0 (float), uint16 for type 1 (half).
 *
 * Usage: trt_loadweights v1|v2 FILE [NAME...]   (no names = load every record)
 * Prints one line per loaded record: "<name> <type> <count> <hex of the value bytes>",
 * the bytes being the values as they lie in memory (little-endian host).
 * Exits 1 with a message on any parse error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int element_size(int type)
{
    switch (type) {
    case 0: return 4; /* kFLOAT */
    case 1: return 2; /* kHALF */
    case 2: return 1; /* kINT8 */
    case 3: return 4; /* kINT32 */
    default: return -1;
    }
}

static void fail(const char* msg, const char* name)
{
    fprintf(stderr, "loadWeights: %s%s%s\n", msg, name ? ": " : "", name ? name : "");
    exit(1);
}

static void print_record(const char* name, int type, unsigned long count, const unsigned char* data, size_t bytes)
{
    printf("%s %d %lu ", name, type, count);
    for (size_t i = 0; i < bytes; i++)
        printf("%02x", data[i]);
    printf("\n");
}

static int wanted(const char* name, int argc, char** argv, int first, int* remaining, char* taken)
{
    if (first >= argc)
        return 1;
    for (int i = first; i < argc; i++) {
        if (!taken[i] && strcmp(argv[i], name) == 0) {
            taken[i] = 1;
            (*remaining)--;
            return 1;
        }
    }
    return 0;
}

int main(int argc, char** argv)
{
    if (argc < 3)
        fail("usage: trt_loadweights v1|v2 FILE [NAME...]", NULL);
    int v2 = strcmp(argv[1], "v2") == 0;
    FILE* in = fopen(argv[2], "rb");
    if (!in)
        fail("unable to open", argv[2]);
    int count = 0;
    if (fscanf(in, "%d", &count) != 1 || count <= 0)
        fail("invalid weight map file (count)", NULL);
    int remaining = argc - 3;
    char* taken = calloc((size_t)argc, 1);
    char name[4096];
    while (count--) {
        if (argc > 3 && remaining == 0)
            break; /* every requested name found */
        int type = 0;
        if (fscanf(in, "%4095s", name) != 1 || fscanf(in, "%d", &type) != 1)
            fail("truncated record header", NULL);
        int is_wanted = wanted(name, argc, argv, 3, &remaining, taken);
        if (v2) {
            int c;
            while ((c = fgetc(in)) != EOF && c != '(') {}
            if (c == EOF)
                fail("no '(' before end of file", name);
            char shape[1024];
            size_t n = 0;
            while ((c = fgetc(in)) != EOF && c != ')') {
                if (n + 1 >= sizeof shape)
                    fail("shape too long", name);
                shape[n++] = (char)c;
            }
            if (c == EOF)
                fail("no ')' before end of file", name);
            shape[n] = 0;
            unsigned long elems = 1;
            char* save = NULL;
            for (char* tok = strtok_r(shape, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char* end = NULL;
                unsigned long d = strtoul(tok, &end, 10);
                if (end == tok)
                    break; /* trailing comma: nothing after it */
                elems *= d;
            }
            int es = element_size(type);
            if (es < 0)
                fail("unsupported type", name);
            size_t bytes = (size_t)es * elems;
            if (!is_wanted) {
                if (fseek(in, (long)(2 + bytes), SEEK_CUR) != 0)
                    fail("seek failed", name);
                continue;
            }
            unsigned char* data = malloc(bytes ? bytes : 1);
            if (fgetc(in) != ' ')
                fail("expected a space before the data", name);
            if (fread(data, 1, bytes, in) != bytes)
                fail("truncated data", name);
            if (fgetc(in) != '\n')
                fail("expected a newline after the data", name);
            print_record(name, type, elems, data, bytes);
            free(data);
        } else {
            unsigned long size = 0;
            if (fscanf(in, "%lu", &size) != 1)
                fail("missing element count", name);
            if (type != 0 && type != 1)
                fail("v1 supports float and half only", name);
            size_t es = type == 0 ? 4 : 2;
            unsigned char* data = malloc(size ? size * es : 1);
            for (unsigned long i = 0; i < size; i++) {
                unsigned int word = 0;
                if (fscanf(in, "%x", &word) != 1)
                    fail("bad or missing hex value", name);
                if (type == 0) {
                    uint32_t w = word;
                    memcpy(data + i * 4, &w, 4);
                } else {
                    uint16_t w = (uint16_t)word;
                    memcpy(data + i * 2, &w, 2);
                }
            }
            if (is_wanted)
                print_record(name, type, size, data, size * es);
            free(data);
        }
    }
    if (remaining > 0)
        fail("some requested weights were not found", NULL);
    free(taken);
    fclose(in);
    return 0;
}
