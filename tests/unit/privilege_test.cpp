#include "tools/vfiokit/privilege.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace vfiokit::cli {
namespace {

TEST(Privilege, AnOrdinaryUsersPermissionErrorSaysRootFirst) {
  const Error denied = Error::from_errno(EACCES, "write driver_override").hint("check dmesg");
  const Error explained = explain_permission(denied, 1000);
  EXPECT_EQ(explained.hint().rfind("run vfiokit as root", 0), 0u) << explained.hint();
  EXPECT_NE(explained.hint().find("; check dmesg"), std::string::npos);
  EXPECT_EQ(explained.kind(), denied.kind());
  EXPECT_NE(explain_permission(Error::from_errno(EPERM, "ioctl"), 1000).hint().find("root"),
            std::string::npos);
}

TEST(Privilege, RootAndOtherErrorsAreLeftAlone) {
  const Error denied = Error::from_errno(EACCES, "open").hint("check dmesg");
  EXPECT_EQ(explain_permission(denied, 0).hint(), "check dmesg");
  EXPECT_EQ(explain_permission(Error::from_errno(EBUSY, "bind"), 1000).hint(), "");
  const Error already = Error::from_errno(EACCES, "open").hint("run as root");
  EXPECT_EQ(explain_permission(already, 1000).hint(), "run as root");
}

}  // namespace
}  // namespace vfiokit::cli
