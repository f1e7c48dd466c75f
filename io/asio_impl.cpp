// The one translation unit that compiles Asio, Asio's SSL and Beast: every other
// file includes their headers with BOOST_*_SEPARATE_COMPILATION and links this.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
