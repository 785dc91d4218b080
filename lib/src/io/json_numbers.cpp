// The rare paths of JSON number conversion (the per-element ones are inline in
// json_numbers.hpp): which way a number beyond its type's range went.

#include "io/json_numbers.hpp"

#include <algorithm>

namespace attn::detail {

long leading_digit_exponent(const char* first, const char* last) {
    const char* q = *first == '-' ? first + 1 : first;
    long magnitude = 0;
    bool seen_nonzero = false;
    bool in_fraction = false;
    for (; q < last && *q != 'e' && *q != 'E'; ++q) {
        if (*q == '.') {
            in_fraction = true;
        } else if (!seen_nonzero && *q != '0') {
            seen_nonzero = true;
            if (in_fraction) --magnitude;
        } else if (!seen_nonzero && in_fraction) {
            --magnitude;
        } else if (seen_nonzero && !in_fraction) {
            ++magnitude;
        }
    }
    if (q < last) {
        ++q;
        const bool negative_exponent = *q == '-';
        if (*q == '+' || *q == '-') ++q;
        long exponent = 0;
        for (; q < last; ++q) exponent = std::min(exponent * 10 + (*q - '0'), 1000000L);
        magnitude += negative_exponent ? -exponent : exponent;
    }
    return magnitude;
}

}  // namespace attn::detail
