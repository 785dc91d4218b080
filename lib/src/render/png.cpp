// PNG through libpng. Writing streams rows into a ByteSink through png_set_write_fn;
// reading uses libpng's simplified API, which converts any PNG to 8-bit RGB.
//
// libpng reports errors with longjmp, which must not cross C++ frames that own
// resources: every C++ object the write needs lives outside the setjmp scope, and the
// sink's exceptions are caught in the callback and rethrown after libpng returns.
#include "attn/png.hpp"

#include <png.h>

#include <csetjmp>
#include <cstring>
#include <exception>
#include <limits>

namespace attn {

Image::Image(std::size_t w, std::size_t h, std::uint32_t fill) : width(w), height(h), rgb(w * h * 3) {
    for (std::size_t i = 0; i < w * h; ++i) {
        rgb[3 * i] = static_cast<std::uint8_t>(fill >> 16);
        rgb[3 * i + 1] = static_cast<std::uint8_t>(fill >> 8);
        rgb[3 * i + 2] = static_cast<std::uint8_t>(fill);
    }
}

std::uint32_t Image::pixel(std::size_t x, std::size_t y) const {
    const std::uint8_t* p = &rgb.at(3 * (y * width + x));
    return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}

void Image::set_pixel(std::size_t x, std::size_t y, std::uint32_t colour) {
    std::uint8_t* p = &rgb.at(3 * (y * width + x));
    p[0] = static_cast<std::uint8_t>(colour >> 16);
    p[1] = static_cast<std::uint8_t>(colour >> 8);
    p[2] = static_cast<std::uint8_t>(colour);
}

namespace {

struct WriteContext {
    io::ByteSink* sink = nullptr;
    std::exception_ptr sink_failure;  // the first exception the sink threw
    char message[256] = {};           // libpng's own error message
};

extern "C" void on_png_write(png_structp png, png_bytep data, std::size_t size) {
    auto* context = static_cast<WriteContext*>(png_get_io_ptr(png));
    if (context->sink_failure) return;  // the rest of the stream is dropped; rethrown at the end
    try {
        context->sink->write(reinterpret_cast<const char*>(data), size);
    } catch (...) {
        context->sink_failure = std::current_exception();
    }
}

extern "C" void on_png_flush(png_structp) {}

extern "C" void on_png_error(png_structp png, png_const_charp message) {
    auto* context = static_cast<WriteContext*>(png_get_error_ptr(png));
    std::strncpy(context->message, message, sizeof context->message - 1);
    png_longjmp(png, 1);
}

// The library never prints: libpng's warnings (none are expected for our own images) are dropped.
extern "C" void on_png_warning(png_structp, png_const_charp) {}

}  // namespace

void encode_png(const Image& image, io::ByteSink& sink) {
    if (image.width == 0 || image.height == 0 || image.rgb.size() != image.width * image.height * 3) {
        throw Error(ErrorKind::Value, "image",
                    "expected a non-empty RGB buffer of width x height x 3 bytes, found " +
                        std::to_string(image.width) + " x " + std::to_string(image.height) + " with " +
                        std::to_string(image.rgb.size()) + " bytes");
    }
    constexpr std::size_t kMaxSide = 0x7fffffff;  // PNG stores sizes as 31-bit integers
    if (image.width > kMaxSide || image.height > kMaxSide)
        throw Error(ErrorKind::Value, "image", "too large for PNG (at most 2^31-1 pixels a side)");

    WriteContext context;
    context.sink = &sink;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, on_png_error, on_png_warning);
    if (png == nullptr) throw std::bad_alloc();
    png_infop info = png_create_info_struct(png);
    if (info == nullptr) {
        png_destroy_write_struct(&png, nullptr);
        throw std::bad_alloc();
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        throw Error(ErrorKind::Value, "PNG", std::string("libpng: ") + context.message);
    }
    png_set_write_fn(png, &context, on_png_write, on_png_flush);
    png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const std::size_t stride = image.width * 3;
    for (std::size_t y = 0; y < image.height; ++y) {
        png_write_row(png, const_cast<png_bytep>(image.rgb.data() + y * stride));  // libpng does not write to it
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (context.sink_failure) std::rethrow_exception(context.sink_failure);
}

Image decode_png(std::string_view bytes, const std::string& name) {
    png_image header{};
    header.version = PNG_IMAGE_VERSION;
    if (png_image_begin_read_from_memory(&header, bytes.data(), bytes.size()) == 0)
        throw Error(ErrorKind::Format, name, std::string("not a readable PNG: ") + header.message);
    header.format = PNG_FORMAT_RGB;
    // Checked before allocating: the header's size is the file's claim, not its content.
    constexpr std::size_t kMaxBytes = std::size_t{1} << 31;
    if (std::size_t{header.width} * header.height > kMaxBytes / 3) {
        png_image_free(&header);
        throw Error(ErrorKind::Format, name,
                    "PNG of " + std::to_string(header.width) + " x " + std::to_string(header.height) +
                        " pixels is too large to decode");
    }
    Image image(header.width, header.height, 0);
    if (png_image_finish_read(&header, nullptr, image.rgb.data(), 0, nullptr) == 0) {
        const std::string message = header.message;
        png_image_free(&header);
        throw Error(ErrorKind::Format, name, "corrupt PNG: " + message);
    }
    return image;
}

}  // namespace attn
