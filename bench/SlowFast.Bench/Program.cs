Console.Error.WriteLine("slowfast bench: not implemented yet"); return 1;
