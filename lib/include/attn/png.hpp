// attn/png.hpp - 8-bit RGB images and their PNG encoding (libpng).
//
// Image is a plain row-major RGB buffer; encode_png writes it as an 8-bit RGB PNG
// without interlacing into any ByteSink (an OutputFile makes the write atomic), and
// decode_png reads a PNG back into RGB (any colour type and depth libpng can convert),
// which is how the tests check what the heatmap drew. Failures throw attn::Error:
// ErrorKind::Format for bytes that are not a PNG, ErrorKind::Value for an image whose
// buffer does not match its size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attn/io.hpp"

namespace attn {

struct Image {
    std::size_t width = 0;
    std::size_t height = 0;
    std::vector<std::uint8_t> rgb;  // width * height * 3 bytes, rows top to bottom

    Image() = default;
    // A width x height image filled with one colour (0xRRGGBB).
    Image(std::size_t w, std::size_t h, std::uint32_t fill = 0xffffff);

    std::uint32_t pixel(std::size_t x, std::size_t y) const;  // 0xRRGGBB
    void set_pixel(std::size_t x, std::size_t y, std::uint32_t colour);
};

// PNG bytes of `image` (8-bit RGB); throws ErrorKind::Value for an empty or inconsistent image.
void encode_png(const Image& image, io::ByteSink& sink);
// The pixels of a PNG as 8-bit RGB (alpha dropped, palettes and grey expanded); `name`
// names the input in errors.
Image decode_png(std::string_view bytes, const std::string& name);

}  // namespace attn
