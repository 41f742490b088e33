import Foundation

exit(Settlectl.main(Array(CommandLine.arguments.dropFirst()), environment: ProcessInfo.processInfo.environment))
