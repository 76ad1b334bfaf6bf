// SPDX-License-Identifier: MIT
// Image processing: a box blur over a generated RGB image, as two separable
// passes (horizontal, then vertical), each a weft::parallelize over rows.
// Writes the input and the blurred image as binary PPM files (any image viewer
// opens them) into the directory given as argument, and checks the result
// against a serial blur; exits 1 on a mismatch.
// Usage: blur [output directory] [radius]
#include <weft/weft.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct image {
  int width;
  int height;
  std::vector<std::uint8_t> rgb;  // width * height * 3 bytes, rows top to bottom

  image(int w, int h) : width(w), height(h), rgb(static_cast<std::size_t>(w) * h * 3) {}
  std::uint8_t* row(int y) { return rgb.data() + static_cast<std::size_t>(y) * width * 3; }
  const std::uint8_t* row(int y) const { return rgb.data() + static_cast<std::size_t>(y) * width * 3; }
};

// Gradients, rings and a checkerboard: edges for the blur to soften.
image generate(int w, int h) {
  image img(w, h);
  weft::parallelize(h, [&](int y) {
    std::uint8_t* p = img.row(y);
    for (int x = 0; x < w; ++x) {
      const double dx = x - w / 2.0;
      const double dy = y - h / 2.0;
      const bool ring = static_cast<int>(std::sqrt(dx * dx + dy * dy) / 24) % 2 == 0;
      const bool check = ((x / 32) + (y / 32)) % 2 == 0;
      p[3 * x + 0] = static_cast<std::uint8_t>(255 * x / (w - 1));
      p[3 * x + 1] = ring ? 230 : 20;
      p[3 * x + 2] = check ? static_cast<std::uint8_t>(255 * y / (h - 1)) : 0;
    }
  });
  return img;
}

// One pass: each output pixel is the mean of the 2r+1 pixels around it along
// x (horizontal) or y (vertical), clamped at the borders. Integer arithmetic,
// so the parallel and serial results are the same bits.
std::uint8_t mean_around(const image& in, int x, int y, int c, int r, bool horizontal) {
  int sum = 0;
  for (int k = -r; k <= r; ++k) {
    const int xx = horizontal ? std::clamp(x + k, 0, in.width - 1) : x;
    const int yy = horizontal ? y : std::clamp(y + k, 0, in.height - 1);
    sum += in.row(yy)[3 * xx + c];
  }
  return static_cast<std::uint8_t>((sum + r) / (2 * r + 1));
}

void blur_row(const image& in, image& out, int y, int r, bool horizontal) {
  std::uint8_t* p = out.row(y);
  for (int x = 0; x < in.width; ++x) {
    for (int c = 0; c < 3; ++c) p[3 * x + c] = mean_around(in, x, y, c, r, horizontal);
  }
}

image blur(const image& in, int r) {
  image tmp(in.width, in.height);
  image out(in.width, in.height);
  // Rows are independent within a pass; the second pass starts after the
  // first returned, so it reads a finished intermediate image.
  weft::parallelize(in.height, [&](int y) { blur_row(in, tmp, y, r, true); });
  weft::parallelize(in.height, [&](int y) { blur_row(tmp, out, y, r, false); });
  return out;
}

image blur_serial(const image& in, int r) {
  image tmp(in.width, in.height);
  image out(in.width, in.height);
  for (int y = 0; y < in.height; ++y) blur_row(in, tmp, y, r, true);
  for (int y = 0; y < in.height; ++y) blur_row(tmp, out, y, r, false);
  return out;
}

bool write_ppm(const image& img, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  std::fprintf(f, "P6\n%d %d\n255\n", img.width, img.height);
  const bool ok = std::fwrite(img.rgb.data(), 1, img.rgb.size(), f) == img.rgb.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  const int radius = argc > 2 ? std::atoi(argv[2]) : 4;

  const image input = generate(800, 600);
  const image blurred = blur(input, radius);

  if (blurred.rgb != blur_serial(input, radius).rgb) {
    std::fprintf(stderr, "blur: the parallel blur differs from the serial one\n");
    return 1;
  }
  const std::string in_path = dir + "/blur_input.ppm";
  const std::string out_path = dir + "/blur_output.ppm";
  if (!write_ppm(input, in_path) || !write_ppm(blurred, out_path)) {
    std::fprintf(stderr, "blur: cannot write %s or %s\n", in_path.c_str(), out_path.c_str());
    return 1;
  }
  std::printf("blur: %dx%d image, radius %d, same as the serial blur; wrote %s and %s\n", input.width, input.height,
              radius, in_path.c_str(), out_path.c_str());
  return 0;
}
