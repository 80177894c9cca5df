// x86 MSI messages: decoding any address/data pair, encoding any set of fields.
//
// Invariants: a message that decodes encodes back to the very same message (nothing the decoder
// accepts is lost or invented), and fields that encode decode back to the same fields, inside
// the 0xfee00000 window with no reserved bits set; describe() never fails on what decodes.
#include "vfiokit/msix/msi.h"
#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::msix;
  FuzzedDataProvider data(bytes, size);

  MsiMessage message;
  message.address = data.ConsumeBool()
                        ? kMsiAddressBase | data.ConsumeIntegral<std::uint32_t>() >> 12
                        : data.ConsumeIntegral<std::uint64_t>();
  message.data = data.ConsumeBool() ? data.ConsumeIntegral<std::uint16_t>()
                                    : data.ConsumeIntegral<std::uint32_t>();
  try {
    const MsiFields fields = decode_msi(message);
    FUZZ_CHECK(encode_msi(fields) == message);
    FUZZ_CHECK(!describe(fields).empty());
  } catch (const vfiokit::Error&) {
  }

  MsiFields fields;
  fields.destination = data.ConsumeIntegral<std::uint8_t>();
  fields.vector = data.ConsumeIntegral<std::uint8_t>();
  fields.delivery = static_cast<DeliveryMode>(data.ConsumeIntegralInRange<std::uint8_t>(0, 9));
  fields.logical_destination = data.ConsumeBool();
  fields.redirection_hint = data.ConsumeBool();
  fields.level_triggered = data.ConsumeBool();
  fields.level_assert = data.ConsumeBool();
  try {
    const MsiMessage encoded = encode_msi(fields);
    FUZZ_CHECK((encoded.address >> 20) == (kMsiAddressBase >> 20));
    FUZZ_CHECK((encoded.data >> 16) == 0);
    FUZZ_CHECK(decode_msi(encoded) == fields);
  } catch (const vfiokit::Error&) {
  }
  return 0;
}
