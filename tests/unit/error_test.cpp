#include "vfiokit/base/error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace vfiokit {
namespace {

TEST(Error, WhatNamesOperationMessageContextAndErrno) {
  const Error e = Error::from_errno(EBUSY, "VFIO_GROUP_SET_CONTAINER", "group is in use")
                      .with("group", "7")
                      .with("bdf", "0000:01:00.0");
  EXPECT_STREQ(e.what(),
               "VFIO_GROUP_SET_CONTAINER: group is in use [group=7 bdf=0000:01:00.0]: "
               "Device or resource busy (EBUSY)");
  EXPECT_EQ(e.errno_value(), EBUSY);
  EXPECT_EQ(e.context_value("group"), "7");
  EXPECT_EQ(e.context_value("iova"), "");
}

TEST(Error, WithoutErrnoOrContextWhatIsOperationAndMessage) {
  EXPECT_STREQ(Error("parse BDF", "bad").what(), "parse BDF: bad");
  EXPECT_STREQ(Error("probe", "").what(), "probe");
}

TEST(Error, KindMapsToDocumentedExitStatuses) {
  EXPECT_EQ(exit_status_for(ErrorKind::failed), 1);
  EXPECT_EQ(exit_status_for(ErrorKind::usage), 2);
  EXPECT_EQ(exit_status_for(ErrorKind::refused), 3);
  EXPECT_EQ(Error("x", "y").kind(), ErrorKind::failed);
  EXPECT_EQ(Error("x", "y").kind(ErrorKind::refused).kind(), ErrorKind::refused);
}

TEST(Error, HintIsKeptApartFromWhat) {
  const Error e = Error("open", "no such group").hint("bind the device to vfio-pci first");
  EXPECT_EQ(e.hint(), "bind the device to vfio-pci first");
  EXPECT_EQ(std::string(e.what()).find("vfio-pci"), std::string::npos);
}

TEST(Error, FromLastErrnoKeepsErrnoAsTheFailingCallLeftIt) {
  errno = ENOENT;
  const Error e = Error::from_last_errno("open", "the node is gone");
  EXPECT_EQ(e.errno_value(), ENOENT);
  EXPECT_EQ(e.operation(), "open");
  EXPECT_STREQ(e.what(), "open: the node is gone: No such file or directory (ENOENT)");
}

TEST(Error, ErrnoNames) {
  EXPECT_EQ(errno_name(EINVAL), "EINVAL");
  EXPECT_EQ(errno_name(ENOSPC), "ENOSPC");
  EXPECT_EQ(errno_name(99999), "errno 99999");
}

}  // namespace
}  // namespace vfiokit
