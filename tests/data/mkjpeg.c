/* Writes the JPEG variants Pillow cannot write, for make_image_refs.py:
 *   mkjpeg ycck    W H in.raw out.jpg   in: W*H*4 CMYK bytes, stored as YCCK (Adobe transform 2)
 *   mkjpeg rgb     W H in.raw out.jpg   in: W*H*3 RGB bytes, stored as RGB (no YCbCr transform)
 *   mkjpeg restart W H in.raw out.jpg   in: W*H*3 RGB bytes, YCbCr 4:2:0 with a restart marker every MCU
 * Not part of the build; the script compiles it with cc -ljpeg. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: mkjpeg ycck|rgb|restart W H in.raw out.jpg\n");
        return 2;
    }
    const char *mode = argv[1];
    int w = atoi(argv[2]), h = atoi(argv[3]);
    int ch = strcmp(mode, "ycck") == 0 ? 4 : 3;
    size_t n = (size_t)w * h * ch;
    unsigned char *px = malloc(n);
    FILE *in = fopen(argv[4], "rb");
    if (!px || !in || fread(px, 1, n, in) != n) {
        fprintf(stderr, "mkjpeg: cannot read %zu bytes from %s\n", n, argv[4]);
        return 1;
    }
    fclose(in);
    FILE *out = fopen(argv[5], "wb");
    if (!out) {
        perror(argv[5]);
        return 1;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, out);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = ch;
    c.in_color_space = ch == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    if (strcmp(mode, "ycck") == 0) jpeg_set_colorspace(&c, JCS_YCCK);
    if (strcmp(mode, "rgb") == 0) jpeg_set_colorspace(&c, JCS_RGB);
    if (strcmp(mode, "restart") == 0) c.restart_interval = 1;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + (size_t)c.next_scanline * w * ch;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(out);
    free(px);
    return 0;
}
