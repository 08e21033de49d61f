/* Text rendering for the Pix2Struct (DePlot) header: transformers 4.36's
 * render_text and render_header, pixel for pixel where we can.
 *
 * In the original, the question is drawn with PIL onto a white strip that
 * is stacked on top of the chart, and the model reads it from the pixels.
 * The strip's size decides how many patch rows the chart gets, so the size
 * must come out exactly as PIL makes it, and the glyphs as close as we can.
 *
 * What HF does, and what is reproduced here:
 *   - the text is wrapped by Python's textwrap.TextWrapper(width=80)
 *     (tabs expanded, whitespace made spaces, breaks at spaces and after
 *     hyphens inside words, words longer than a line cut, leading and
 *     trailing spaces of wrapped lines dropped);
 *   - the font is opened by PIL with FreeType at 36 pixels; PIL 9.4 lays
 *     text out with libraqm (HarfBuzz): unhinted advances rounded to 1/64
 *     pixel, plus the font's OpenType 'liga' ligatures and 'kern' pair
 *     kerning. We read those two tables ourselves (GSUB single and ligature
 *     substitution, GPOS pair positioning), so Latin, Greek and Cyrillic
 *     text lands where HarfBuzz puts it. Not reproduced: mark positioning
 *     of combining accents, contextual substitutions, right-to-left and
 *     complex scripts, the old TrueType 'kern' table of fonts without GPOS
 *     kerning. Text using those can move by a pixel or a glyph width;
 *   - glyphs are hinted and rasterised by FreeType with FT_LOAD_DEFAULT,
 *     each at a whole-pixel position, as PIL does, so with the same
 *     FreeType (Debian 12's 2.12) the pixels are PIL's exactly;
 *   - canvas = textbbox right/bottom (PIL's rules: glyph boxes plus the pen
 *     line, top at the font's ascender) + the padding; more than one line
 *     is drawn with PIL's multiline spacing (height of "A" + 4);
 *   - render_header scales the header strip and the image to the wider of
 *     the two widths with PIL's bicubic resize and stacks them.
 *
 * Fonts. HF's default is Arial.TTF downloaded from the hub, and real DePlot
 * was trained on Arial headers: use Liberation Sans (Debian fonts-liberation,
 * LiberationSans-Regular.ttf, metric-compatible with Arial) for the closest
 * match. The test fixture (shared/fixtures/pix2struct-tiny) was rendered with
 * DejaVu Sans (fonts-dejavu-core), which is also the default here because it
 * is on most Linux systems. */
#ifndef VMED_IMAGE_RENDER_H
#define VMED_IMAGE_RENDER_H

#include <stdint.h>

#include "base/error.h"
#include "image/image.h"

#define RENDER_DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define RENDER_ARIAL_LIKE_FONT "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"

/* The rendered text strip may be at most this many pixels each way (about
 * 200 lines of 80 characters at 36 pixels); longer text is refused, since
 * the image under it would be left only a few patches. */
#define RENDER_MAX_SIDE 8192

typedef struct {
    const char *font_path;     /* NULL: RENDER_DEFAULT_FONT */
    int font_size;             /* pixels per em, 36 */
    int padding;               /* on every side, 5 */
    int wrap_width;            /* characters per line, 80 */
    int line_spacing;          /* extra pixels between lines, PIL's 4 */
    uint8_t text_rgb[3];       /* black */
    uint8_t background_rgb[3]; /* white */
} RenderOptions;

/* HF's defaults, listed above. */
void render_options_default(RenderOptions *o);

/* transformers' render_text: text (UTF-8) drawn on a new 8-bit RGB image.
 * o may be NULL for the defaults. A missing font file, invalid UTF-8 and
 * text whose strip would exceed RENDER_MAX_SIDE are errors. */
int render_text(Image *out, const char *text, const RenderOptions *o, Error *err);

/* transformers' render_header: the header strip and rgb8 (8-bit RGB) both
 * resized to the wider of their widths (heights int(h * new_w / w)) and
 * stacked, header on top. A header strip that would leave the image less
 * than 1% of the rows is refused (HF would squeeze the image away). */
int render_header(Image *out, const Image *rgb8, const char *header, const RenderOptions *o, Error *err);

/* Python's textwrap.TextWrapper(width).wrap(text) joined with "\n", as a
 * new NUL-terminated string (free() it). Exposed for tests. Non-ASCII
 * characters count as letters for the hyphen rules (Python asks Unicode). */
int render_wrap_text(char **out, const char *text, int width, Error *err);

#endif
