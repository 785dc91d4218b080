// Format dispatch, TENSOR arguments, whole-file reading and atomic output.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "attn/io.hpp"
#include "test_support.hpp"

using namespace attn;

namespace {

// A fresh directory under /tmp, removed with its files at the end of the test.
class TempDir {
public:
    TempDir() {
        char name[] = "/tmp/attn_test_XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path_ = name;
    }
    ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
    std::size_t entries() const {
        std::size_t n = 0;
        for (const auto& name : list()) n += name.empty() ? 0 : 1;
        return n;
    }
    std::vector<std::string> list() const {
        std::vector<std::string> names;
        FILE* p = ::popen(("ls -A '" + path_ + "'").c_str(), "r");
        char line[4096];
        while (p && std::fgets(line, sizeof line, p)) {
            std::string s(line);
            if (!s.empty() && s.back() == '\n') s.pop_back();
            names.push_back(s);
        }
        if (p) ::pclose(p);
        return names;
    }

private:
    std::string path_;
};

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

Tensor sample() { return Tensor(xt::xarray<float>{{1.5f, -2.0f, 3.25f}, {0.0f, 1e-3f, 7.0f}}); }

}  // namespace

TEST_CASE("tensor refs: archive members after a colon, plain paths otherwise") {
    auto check = [](const char* spec, const char* path, const char* member) {
        const io::TensorRef ref = io::parse_tensor_ref(spec);
        CHECK(ref.path == path);
        CHECK(ref.member == member);
    };
    check("w.npz:q", "w.npz", "q");
    check("dir/model.safetensors:layers.0.attn.q_proj.weight", "dir/model.safetensors", "layers.0.attn.q_proj.weight");
    check("x.json:k", "x.json", "k");
    check("a:b.npy", "a:b.npy", "");
    check("q.npy", "q.npy", "");
    check("-", "-", "");
    check("W.NPZ:m", "W.NPZ", "m");
}

TEST_CASE("formats: by extension and by first bytes") {
    CHECK(io::format_from_extension("a/b.npy") == io::Format::Npy);
    CHECK(io::format_from_extension("b.NPZ") == io::Format::Npz);
    CHECK(io::format_from_extension("b.safetensors") == io::Format::Safetensors);
    CHECK(io::format_from_extension("b.json") == io::Format::Json);
    CHECK_FALSE(io::format_from_extension("b.txt").has_value());
    CHECK(io::sniff_format(std::string("\x93NUMPY\x01\x00", 8)) == io::Format::Npy);
    CHECK(io::sniff_format("PK\x03\x04rest") == io::Format::Npz);
    CHECK(io::sniff_format("  \n[[1, 2]]") == io::Format::Json);
    CHECK(io::sniff_format("{\"shape\": []}") == io::Format::Json);
    std::string st(8, '\0');
    st[0] = 2;
    CHECK(io::sniff_format(st + "{}") == io::Format::Safetensors);
    CHECK_FALSE(io::sniff_format("hello").has_value());
    SUBCASE("near misses") {
        CHECK_FALSE(io::sniff_format("").has_value());
        CHECK_FALSE(io::sniff_format(" \t\r\n").has_value());
        CHECK(io::sniff_format("\t\r\n{") == io::Format::Json);
        CHECK_FALSE(io::sniff_format("\x93NUMP").has_value());  // the magic cut short
        // An 8-byte header length of 1 (too short for "{}"), or past the end of the bytes.
        std::string one(8, '\0');
        one[0] = 1;
        CHECK_FALSE(io::sniff_format(one + "{}").has_value());
        std::string long_header(8, '\0');
        long_header[0] = 3;
        CHECK_FALSE(io::sniff_format(long_header + "{}").has_value());
    }
}

TEST_CASE("read_tensor: every format, by extension or content") {
    TempDir dir;
    const Tensor t = sample();
    for (const char* name : {"t.npy", "t.json", "t.npz", "t.safetensors"}) {
        CAPTURE(name);
        io::write_tensor(dir.file(name), t);
        const Tensor back = io::read_tensor(dir.file(name));
        CHECK(test::max_abs_diff(back, t) == 0.0);
    }
    // Members by name; a single-member archive needs no name.
    CHECK(io::read_tensor(dir.file("t.npz") + ":arr_0").shape() == Shape{2, 3});
    CHECK(io::read_tensor(dir.file("t.safetensors") + ":arr_0").shape() == Shape{2, 3});
    // Content decides when the extension says nothing.
    std::rename(dir.file("t.npy").c_str(), dir.file("t.data").c_str());
    CHECK(test::max_abs_diff(io::read_tensor(dir.file("t.data")), t) == 0.0);
}

TEST_CASE("read_tensor: archive errors list the members") {
    TempDir dir;
    io::write_tensor_archive(dir.file("w.npz"), {{"a", sample()}, {"b", sample()}});
    std::string message = test::error_of([&] { io::read_tensor(dir.file("w.npz")); });
    CHECK(test::contains(message, "holds 2 tensors (a, b)"));
    message = test::error_of([&] { io::read_tensor(dir.file("w.npz") + ":c"); });
    CHECK(test::contains(message, "a"));
    CHECK(test::contains(message, "b"));
    io::write_tensor_archive(dir.file("w.json"), {{"a", sample()}, {"b", sample()}});
    CHECK(io::read_tensor(dir.file("w.json") + ":b").shape() == Shape{2, 3});
    message = test::error_of([&] { io::read_tensor(dir.file("w.json") + ":zz"); });
    CHECK(test::contains(message, "no tensor named 'zz' (members: a, b)"));
}

TEST_CASE("read_tensor: missing, empty and unrecognised files") {
    TempDir dir;
    std::string message = test::error_of([&] { io::read_tensor(dir.file("none.npy")); }, ErrorKind::Io);
    CHECK(test::contains(message, "none.npy: cannot open: No such file or directory"));
    write_text(dir.file("empty.npy"), "");
    message = test::error_of([&] { io::read_tensor(dir.file("empty.npy")); });
    CHECK(test::contains(message, "empty.npy: file is empty"));
    write_text(dir.file("x.bin"), "garbage");
    message = test::error_of([&] { io::read_tensor(dir.file("x.bin")); });
    CHECK(test::contains(message, "unrecognised format"));
    message = test::error_of([&] { io::read_tensor(dir.file("")); }, ErrorKind::Io);
    CHECK(test::contains(message, "is a directory"));
}

TEST_CASE("OutputFile: nothing appears before commit, and an abandoned file leaves no trace") {
    TempDir dir;
    const std::string target = dir.file("out.npy");
    {
        io::OutputFile out(target);
        out.write("partial");
        CHECK(::access(target.c_str(), F_OK) != 0);
        CHECK(dir.entries() == 1);  // only the temporary file
    }
    CHECK(dir.entries() == 0);
    {
        io::OutputFile out(target);
        out.write("complete");
        out.commit();
    }
    CHECK(test::fixture_at(target) == "complete");
    CHECK(dir.entries() == 1);
}

TEST_CASE("OutputFile: an existing file is replaced only on commit, keeping its mode") {
    TempDir dir;
    const std::string target = dir.file("keep.json");
    write_text(target, "old");
    ::chmod(target.c_str(), 0640);
    {
        io::OutputFile out(target);
        out.write(std::string(3 << 20, 'x'));  // past the buffer: data reach the temporary file
    }
    CHECK(test::fixture_at(target) == "old");
    io::OutputFile out(target);
    out.write("new");
    out.commit();
    CHECK(test::fixture_at(target) == "new");
    struct stat st {};
    REQUIRE(::stat(target.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("OutputFile: unwritable places are I/O errors naming the path") {
    std::string message = test::error_of([] { io::OutputFile out("/nonexistent-dir/x.npy"); }, ErrorKind::Io);
    CHECK(test::contains(message, "/nonexistent-dir/x.npy: cannot create output file: No such file or directory"));
    message = test::error_of([] { io::OutputFile out("/tmp"); }, ErrorKind::Io);
    CHECK(test::contains(message, "is a directory"));
}

TEST_CASE("OutputFile: a symbolic link is written through and stays a link") {
    TempDir dir;
    REQUIRE(::mkdir(dir.file("sub").c_str(), 0755) == 0);
    auto link_to = [&](const std::string& target, const std::string& link) {
        REQUIRE(::symlink(target.c_str(), dir.file(link).c_str()) == 0);
    };
    auto link_text = [&](const std::string& link) {
        char text[4096] = {};
        REQUIRE(::readlink(dir.file(link).c_str(), text, sizeof text - 1) >= 0);
        return std::string(text);
    };
    auto write_through = [&](const std::string& link, const std::string& text) {
        io::OutputFile out(dir.file(link));
        out.write(text);
        out.commit();
    };
    SUBCASE("relative to the link's folder, over an existing file whose mode is kept") {
        write_text(dir.file("target.json"), "old");
        ::chmod(dir.file("target.json").c_str(), 0640);
        link_to("../target.json", "sub/link.json");
        write_through("sub/link.json", "new");
        CHECK(test::fixture_at(dir.file("target.json")) == "new");
        CHECK(link_text("sub/link.json") == "../target.json");
        struct stat st {};
        REQUIRE(::stat(dir.file("target.json").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0640);
    }
    SUBCASE("a chain of two links, one absolute") {
        link_to(dir.file("sub/end.json"), "middle.json");
        link_to("middle.json", "first.json");
        write_through("first.json", "chained");
        CHECK(test::fixture_at(dir.file("sub/end.json")) == "chained");
        CHECK(link_text("first.json") == "middle.json");
    }
    SUBCASE("a dangling link creates the file it names") {
        link_to("sub/new.json", "dangling.json");
        write_through("dangling.json", "created");
        CHECK(test::fixture_at(dir.file("sub/new.json")) == "created");
        CHECK(link_text("dangling.json") == "sub/new.json");
    }
    SUBCASE("a loop is an error naming the OUT") {
        link_to("b", "a");
        link_to("a", "b");
        const std::string message = test::error_of([&] { io::OutputFile out(dir.file("a")); }, ErrorKind::Io);
        CHECK(test::contains(message, "a: cannot create output file: Too many levels of symbolic links"));
    }
}

TEST_CASE("same_output_file: one file however spelled, and the null device never") {
    TempDir dir;
    REQUIRE(::mkdir(dir.file("sub").c_str(), 0755) == 0);
    write_text(dir.file("a.npy"), "a");
    REQUIRE(::link(dir.file("a.npy").c_str(), dir.file("hard.npy").c_str()) == 0);
    REQUIRE(::symlink("a.npy", dir.file("soft.npy").c_str()) == 0);
    REQUIRE(::symlink("new.npy", dir.file("dangling.npy").c_str()) == 0);
    REQUIRE(::symlink("sub", dir.file("sublink").c_str()) == 0);
    CHECK(io::same_output_file(dir.file("a.npy"), dir.file("sub/../a.npy")));
    CHECK(io::same_output_file(dir.file("a.npy"), dir.file("hard.npy")));
    CHECK(io::same_output_file(dir.file("soft.npy"), dir.file("a.npy")));
    CHECK(io::same_output_file(dir.file("dangling.npy"), dir.file("./new.npy")));  // neither exists yet
    CHECK(io::same_output_file(dir.file("sublink/x.npy"), dir.file("sub/x.npy")));
    CHECK(io::same_output_file(dir.file("no/such/../../x.npy"), dir.file("x.npy")));
    CHECK_FALSE(io::same_output_file(dir.file("a.npy"), dir.file("new.npy")));
    CHECK_FALSE(io::same_output_file(dir.file("sub/a.npy"), dir.file("a.npy")));
    CHECK_FALSE(io::same_output_file("/dev/null", "/dev/null"));
    CHECK(io::same_output_file("/dev/full", "/dev/full"));
}

TEST_CASE("write_tensor: the OUT extension picks the format, unknown ones are usage errors") {
    TempDir dir;
    const std::string message =
        test::error_of([&] { io::write_tensor(dir.file("x.txt"), sample()); }, ErrorKind::Usage);
    CHECK(test::contains(message, "expected a name ending in .npy, .json, .npz or .safetensors"));
    CHECK(dir.entries() == 0);
    io::WriteOptions as_npy;
    as_npy.format = io::Format::Npy;
    io::write_tensor(dir.file("x.txt"), sample(), as_npy);
    CHECK(io::decode_npy(test::fixture_at(dir.file("x.txt")), "x.txt").shape() == Shape{2, 3});
}

// ---- streams: standard input and pipes (issue 17) ------------------------------------

namespace {

// The bytes in pieces of at most `piece`, then (when `endless`) zeros without end;
// counts what it handed out.
class PieceSource final : public io::ByteSource {
public:
    PieceSource(std::string bytes, std::size_t piece, bool endless = false)
        : bytes_(std::move(bytes)), piece_(piece), endless_(endless) {}
    std::size_t read(char* out, std::size_t size) override {
        const std::size_t n = std::min(size, piece_);
        std::size_t given = std::min(n, bytes_.size() - std::min(bytes_.size(), consumed_));
        std::memcpy(out, bytes_.data() + consumed_, given);
        if (given == 0 && endless_) {
            std::memset(out, 0, n);
            given = n;
        }
        consumed_ += given;
        return given;
    }
    std::size_t consumed() const { return consumed_; }

private:
    std::string bytes_;
    std::size_t piece_;
    bool endless_;
    std::size_t consumed_ = 0;
};

std::string encoded(const Tensor& t, io::Format format) {
    io::StringSink sink;
    io::encode_tensor(t, format, sink);
    return sink.take();
}

}  // namespace

TEST_CASE("read_tensor_stream: every format, in pieces of any size, reads as its file") {
    for (io::Format format : {io::Format::Npy, io::Format::Npz, io::Format::Safetensors, io::Format::Json}) {
        const std::string bytes = encoded(sample(), format);
        for (std::size_t piece : {std::size_t(1), std::size_t(7), bytes.size() + 1}) {
            CAPTURE(piece);
            PieceSource source(bytes, piece);
            const Tensor t = io::read_tensor_stream(source, "<stdin>");
            CHECK(t.shape() == Shape{2, 3});
            CHECK(t.values<float>() == sample().values<float>());
            CHECK(source.consumed() == bytes.size());
        }
    }
}

TEST_CASE("read_tensor_stream: .npy and .safetensors stop one byte after their promise") {
    for (io::Format format : {io::Format::Npy, io::Format::Safetensors}) {
        const std::string bytes = encoded(sample(), format);
        PieceSource endless(bytes, 4096, true);
        const std::string message = test::error_of([&] { io::read_tensor_stream(endless, "<stdin>"); });
        CHECK(test::contains(message, "<stdin>: "));
        CHECK(test::contains(message, "(trailing bytes; the input was read no further)"));
        // The promise, the one-byte probe, and no more than the probe's piece.
        CHECK(endless.consumed() <= bytes.size() + 4096);
        PieceSource one_more(bytes + "x", 1);
        CHECK_THROWS_AS(io::read_tensor_stream(one_more, "<stdin>"), Error);
        CHECK(one_more.consumed() == bytes.size() + 1);
    }
}

TEST_CASE("read_tensor_stream: a stream that ends short is truncated, as a file is") {
    const std::string bytes = encoded(sample(), io::Format::Npy);
    PieceSource source(bytes.substr(0, bytes.size() - 1), 5);
    CHECK(test::contains(test::error_of([&] { io::read_tensor_stream(source, "<stdin>"); }),
                         "<stdin>: npy data is 23 bytes, shape (2, 3) needs 24 (truncated)"));
    PieceSource zeros("", 4096, true);
    CHECK(test::contains(test::error_of([&] { io::read_tensor_stream(zeros, "/dev/zero"); }),
                         "/dev/zero: unrecognised format"));
    CHECK(zeros.consumed() <= 4096);
}

TEST_CASE("rank cap: one cap of 64 dimensions, refused by every writer") {
    const Tensor r65 = Tensor::zeros(DType::Float32, Shape(kMaxRank + 1, 1));
    for (io::Format format : {io::Format::Npy, io::Format::Npz, io::Format::Safetensors, io::Format::Json}) {
        io::StringSink sink;
        const std::string message = test::error_of([&] { io::encode_tensor(r65, format, sink); }, ErrorKind::Value);
        CHECK(test::contains(message, "its shape has 65 dimensions, over the cap of 64"));
    }
    const Tensor r64 = Tensor::zeros(DType::Float32, Shape(kMaxRank, 1));
    for (io::Format format : {io::Format::Npy, io::Format::Npz, io::Format::Safetensors, io::Format::Json}) {
        PieceSource source(encoded(r64, format), 4096);
        CHECK(io::read_tensor_stream(source, "<stdin>").rank() == kMaxRank);
    }
}
