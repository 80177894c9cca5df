#include "tests/unit/fixtures.h"

#include <stdlib.h>

#include <stdexcept>

namespace vfiokit::test {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "vfiokit-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

FixtureCopy::FixtureCopy(const fs::path& source) {
  std::string pattern = (fs::temp_directory_path() / "vfiokit-fixture-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = pattern;
  fs::copy(source, root_, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
}

FixtureCopy::~FixtureCopy() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

}  // namespace vfiokit::test
